//! Cross-origin access (CORS) for media and hls.js, so players on other origins can use them.

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 86_400;

/// Adds `Access-Control-Allow-Origin` (and what a player may read) when an origin is configured.
/// The value never depends on the request, so caches need no `Vary: Origin`.
pub fn allow(origin: Option<&str>, headers: &mut HeaderMap) {
    let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else {
        return;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, ETag, Age"),
    );
}

/// The answer to a preflight `OPTIONS` (a player that sends `Range` or its own headers). No
/// credentials are ever allowed, so echoing the requested header names opens nothing.
pub fn preflight(origin: Option<&str>, request: &HeaderMap) -> Response<Bytes> {
    let mut response = Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::ALLOW, "GET, HEAD, OPTIONS")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::new())
        .unwrap_or_default();
    if origin.is_none() {
        return response;
    }
    let headers = response.headers_mut();
    allow(origin, headers);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    let asked = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("Range"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_configured_origin_only() {
        let mut headers = HeaderMap::new();
        allow(Some("*"), &mut headers);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let mut headers = HeaderMap::new();
        allow(None, &mut headers);
        assert!(headers.is_empty());
    }

    #[test]
    fn preflight_echoes_requested_headers() {
        let mut request = HeaderMap::new();
        request.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("range, x-player"),
        );
        let response = preflight(Some("https://dash.example"), &request);
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let headers = response.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://dash.example"
        );
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "range, x-player"
        );
        assert!(
            !preflight(None, &request)
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }
}
