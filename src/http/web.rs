//! The layer browsers and caches see around the routes: player page, assets, CORS, Cache-Control, ETags, ranges.
//!
//! Handlers answer with a whole body; [`finish`] then applies the HTTP conventions in one place,
//! keyed on the route (the path only: a query such as a session id never changes them).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::config::WebSettings;
use crate::library::RelPath;

use super::auth::Who;
use super::caching::{self, Content};
use super::urls::{self, Leaf, Route};
use super::{App, HttpError, assets, cors, player};

/// Wraps the site's filter: answers CORS preflights itself and passes every other response
/// through [`finish`].
pub fn layer<F>(
    app: Arc<App>,
    inner: F,
) -> impl Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone + Send + Sync + 'static
where
    F: Filter<Extract = (Response<Bytes>,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let preflight_app = app.clone();
    let preflight = warp::options()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(move |path: warp::path::FullPath, headers: HeaderMap| {
            match urls::route(path.as_str()) {
                Some(route) if route.cross_origin() => {
                    cors::preflight(preflight_app.web.cors_origin.as_deref(), &headers)
                }
                _ => HttpError::MethodNotAllowed.into_response(),
            }
        });
    let finished = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(inner)
        .map(
            move |method: Method,
                  path: warp::path::FullPath,
                  headers: HeaderMap,
                  response: Response<Bytes>| {
                let response = finish(&app.web, &method, path.as_str(), &headers, response);
                if app.gate.is_some() {
                    private(path.as_str(), response)
                } else {
                    response
                }
            },
        );
    preflight.or(finished).unify()
}

/// Applies the conventions to a handler's response: Cache-Control by kind, ETag with 304 and
/// (for segments and assets) byte ranges on success, and CORS on media and assets, errors included.
pub fn finish(
    web: &WebSettings,
    method: &Method,
    path: &str,
    request: &HeaderMap,
    response: Response<Bytes>,
) -> Response<Bytes> {
    let Some(route) = urls::route(path) else {
        return response;
    };
    let mut response = if response.status() == StatusCode::OK
        && (method == Method::GET || method == Method::HEAD)
    {
        revalidate(&route, request, response)
    } else {
        response
    };
    if route.cross_origin() {
        cors::allow(web.cors_origin.as_deref(), response.headers_mut());
    }
    response
}

/// With logins, what a login opened is for that viewer's cache only: a shared cache (a proxy, a
/// CDN) that stored a `public` segment would hand it to anyone. hlss's own scripts stay public.
fn private(path: &str, mut response: Response<Bytes>) -> Response<Bytes> {
    let open = matches!(
        urls::route(path),
        Some(Route::Asset(_) | Route::Health | Route::Login | Route::Logout)
    );
    let Some(cache) = response.headers().get(header::CACHE_CONTROL) else {
        return response;
    };
    let cache = cache.to_str().unwrap_or_default();
    if open || cache.contains("no-store") || cache.contains("private") {
        return response;
    }
    let kept = cache
        .replace("public", "")
        .trim_start_matches([',', ' '])
        .to_owned();
    let value = if kept.is_empty() {
        "private".to_owned()
    } else {
        format!("private, {kept}")
    };
    if let Ok(value) = HeaderValue::try_from(value) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Rebuilds a 200 through [`caching::respond`] with the route's cache policy.
fn revalidate(route: &Route, request: &HeaderMap, response: Response<Bytes>) -> Response<Bytes> {
    let (parts, body) = response.into_parts();
    let policy = match route {
        // A master playlist changes only while an EVENT stream's plan is unknown; its handler
        // says which (its body has no playlist type to tell).
        Route::Hls(_, Leaf::Master)
            if parts
                .headers
                .get(header::CACHE_CONTROL)
                .map(HeaderValue::as_bytes)
                == Some(caching::VOD_PLAYLIST.as_bytes()) =>
        {
            caching::VOD_PLAYLIST
        }
        Route::Hls(_, Leaf::Master) => caching::LIVE_PLAYLIST,
        Route::Hls(_, Leaf::Playlist(_) | Leaf::Subtitles(_)) if is_vod_playlist(&body) => {
            caching::VOD_PLAYLIST
        }
        Route::Hls(_, Leaf::Playlist(_) | Leaf::Subtitles(_)) => caching::LIVE_PLAYLIST,
        Route::Hls(_, Leaf::Segment(..) | Leaf::Cues(..)) => caching::SEGMENT,
        Route::Asset(_) => caching::ASSET,
        Route::Watch(_) | Route::Folder(_) => caching::PAGE,
        _ => return Response::from_parts(parts, body),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    // Segments come with the tag made when their bytes were (see `stream::Body`).
    let known_tag = parts
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut content = Content::new(content_type, policy, body).with_etag(known_tag);
    if matches!(
        route,
        Route::Hls(_, Leaf::Segment(..) | Leaf::Cues(..)) | Route::Asset(_)
    ) {
        content = content.with_ranges();
    }
    let mut fresh = caching::respond(request, content);
    // Keep what the handler added (a CSP, a Location); the conventions' own headers win.
    for (name, value) in &parts.headers {
        if !fresh.headers().contains_key(name) {
            fresh.headers_mut().insert(name, value.clone());
        }
    }
    fresh
}

/// A playlist that says `#EXT-X-PLAYLIST-TYPE:VOD` never changes (RFC 8216, 4.3.3.5).
fn is_vod_playlist(body: &[u8]) -> bool {
    const TAG: &[u8] = b"\n#EXT-X-PLAYLIST-TYPE:VOD";
    body.windows(TAG.len()).any(|w| w == TAG)
}

/// `GET /watch/<file>`: the player page, for files the library can serve.
pub fn watch(app: &App, rel: &RelPath, who: &Who) -> Result<Response<Bytes>, HttpError> {
    app.library.source(rel)?;
    let title = app.library.title();
    let hlsjs = assets::hlsjs_src(&app.web);
    let page = player::page(&title, rel, &hlsjs, who.link(), who.may_share());
    let mut response = Response::new(Bytes::from(page));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(caching::PAGE),
    );
    if let Ok(csp) = HeaderValue::try_from(player::content_security_policy(&hlsjs)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// `GET /assets/<name>`.
pub fn asset(name: &str) -> Result<Response<Bytes>, HttpError> {
    let asset = assets::find(name).ok_or(HttpError::NotFound)?;
    let mut response = Response::new(Bytes::from_static(asset.body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(caching::ASSET),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> WebSettings {
        WebSettings {
            cors_origin: Some("*".into()),
            hlsjs_url: None,
        }
    }

    fn ok(content_type: &'static str, body: &'static [u8]) -> Response<Bytes> {
        let mut response = Response::new(Bytes::from_static(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    fn get(path: &str, response: Response<Bytes>) -> Response<Bytes> {
        finish(&web(), &Method::GET, path, &HeaderMap::new(), response)
    }

    #[test]
    fn playlists_vod_long_event_briefly() {
        let vod = get(
            "/hls/a.mp4/video.m3u8",
            ok(
                "application/vnd.apple.mpegurl",
                b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n",
            ),
        );
        assert_eq!(vod.headers()[header::CACHE_CONTROL], caching::VOD_PLAYLIST);
        assert_eq!(vod.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(vod.headers().contains_key(header::ETAG));
        let event = get(
            "/hls/a.mp4/video.m3u8",
            ok(
                "application/vnd.apple.mpegurl",
                b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:EVENT\n",
            ),
        );
        assert_eq!(
            event.headers()[header::CACHE_CONTROL],
            caching::LIVE_PLAYLIST
        );
        assert_eq!(
            event.headers()[header::CONTENT_TYPE],
            "application/vnd.apple.mpegurl"
        );
        // A master playlist is cached as its handler says: briefly unless complete.
        let master = |cache: &'static str| {
            let mut response = ok(
                "application/vnd.apple.mpegurl",
                b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nvideo.m3u8?s=1\n",
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            get("/hls/a.mp4/index.m3u8", response)
        };
        let vod = master(caching::VOD_PLAYLIST);
        assert_eq!(vod.headers()[header::CACHE_CONTROL], caching::VOD_PLAYLIST);
        let growing = master("no-cache");
        assert_eq!(
            growing.headers()[header::CACHE_CONTROL],
            caching::LIVE_PLAYLIST
        );
    }

    #[test]
    fn segments_cache_long_with_ranges_and_cors() {
        let response = get("/hls/a.mp4/3.ts", ok("video/mp2t", b"abc"));
        let headers = response.headers();
        assert_eq!(headers[header::CACHE_CONTROL], caching::SEGMENT);
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        // The query (a viewer session) is not part of the path the layer sees, by construction
        // of warp's `path::full`; the ETag is the same whatever asked.
        assert_eq!(headers[header::ETAG], caching::etag(b"abc").as_str());
    }

    #[test]
    fn errors_keep_their_status_and_get_cors_on_media_only() {
        let gone = HttpError::Stream(crate::stream::StreamError::Evicted(1)).into_response();
        let response = get("/hls/a.mp4/1.ts", gone);
        assert_eq!(response.status(), StatusCode::GONE);
        assert_eq!(response.headers()[header::CACHE_CONTROL], caching::NEVER);
        assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let listing = get("/", ok("text/html; charset=utf-8", b"<p>"));
        assert!(
            !listing
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
        assert_eq!(listing.headers()[header::CACHE_CONTROL], caching::PAGE);
        let health = get("/healthz", ok("text/plain", b"ok\n"));
        assert_eq!(health.headers()[header::CACHE_CONTROL], "no-cache");
        assert!(!health.headers().contains_key(header::ETAG));
    }

    #[test]
    fn with_logins_only_the_viewer_may_cache() {
        let segment = private(
            "/hls/a.mp4/3.ts",
            get("/hls/a.mp4/3.ts", ok("video/mp2t", b"abc")),
        );
        assert_eq!(
            segment.headers()[header::CACHE_CONTROL],
            "private, max-age=86400"
        );
        let listing = private("/", get("/", ok("text/html; charset=utf-8", b"<p>")));
        assert_eq!(
            listing.headers()[header::CACHE_CONTROL],
            "private, no-cache"
        );
        let js = "/assets/player.js";
        let script = private(js, get(js, ok("text/javascript", b"1")));
        assert_eq!(script.headers()[header::CACHE_CONTROL], caching::ASSET);
        let error = HttpError::Unauthorized.into_response();
        let error = private("/", get("/", error));
        assert_eq!(error.headers()[header::CACHE_CONTROL], caching::NEVER);
    }

    #[test]
    fn unknown_assets_are_404() {
        assert!(matches!(asset("nope.js"), Err(HttpError::NotFound)));
        let js = asset(assets::PLAYER_JS_NAME).unwrap();
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
    }
}
