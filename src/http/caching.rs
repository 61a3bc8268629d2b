//! HTTP caching and transfer rules: Cache-Control per kind of response, ETags, 304s and byte ranges.
//!
//! Everything here depends on the response body and the request headers only, never on the URL's
//! query string, so a session id added to segment URIs does not split caches or ETags.

use std::hash::{Hash, Hasher};

use bytes::Bytes;
use warp::http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// Segments never change for a given file: caches may keep them a day.
pub const SEGMENT: &str = "public, max-age=86400";
/// A VOD playlist is complete and never changes for a given file.
pub const VOD_PLAYLIST: &str = "public, max-age=86400";
/// hls.js and the player's script and style: page URLs carry a version query, so a day is safe.
pub const ASSET: &str = "public, max-age=86400";
/// Listings and player pages: always revalidated (cheap with the ETag), since folders change.
pub const PAGE: &str = "no-cache";
/// Status and error responses.
pub const NEVER: &str = "no-store";

/// A growing (EVENT or sliding-window) playlist: players poll it about once per target duration
/// and must see new segments soon, so caches may reuse it for one second only.
pub const LIVE_PLAYLIST: &str = "public, max-age=1";

/// A body about to be sent, and how it may be cached and transferred.
pub struct Content {
    pub content_type: HeaderValue,
    pub cache_control: HeaderValue,
    pub body: Bytes,
    /// Answer byte-range requests (segments and assets).
    pub ranges: bool,
    /// The entity tag when the handler already knows it (segments: hashed once when made).
    pub etag: Option<String>,
}

impl Content {
    pub fn new(content_type: HeaderValue, cache_control: &'static str, body: Bytes) -> Content {
        Content {
            content_type,
            cache_control: HeaderValue::from_static(cache_control),
            body,
            ranges: false,
            etag: None,
        }
    }

    /// Uses `tag`, made by [`etag_from`] when the bytes were made, instead of hashing them again.
    pub fn with_etag(self, tag: Option<String>) -> Content {
        Content { etag: tag, ..self }
    }

    pub fn with_ranges(self) -> Content {
        Content {
            ranges: true,
            ..self
        }
    }
}

/// A strong entity tag from the body's bytes: the same bytes give the same tag in every run of
/// the same build, whichever URL (or query) they were asked for by.
pub fn etag(body: &[u8]) -> String {
    etag_from(digest(body), body.len())
}

/// The content hash behind [`etag`]: SipHash with fixed keys, deterministic, and about a
/// millisecond for a large segment, which is why segments are hashed once, when they are made.
fn digest(body: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    hasher.finish()
}

/// The entity tag for a body of `len` bytes whose [`digest`] is `digest`.
pub fn etag_from(digest: u64, len: usize) -> String {
    format!("\"{digest:016x}-{len:x}\"")
}

/// The response to a GET or HEAD for `content`: 200, 304 when `If-None-Match` names its ETag,
/// 206 for a satisfiable single byte range, 416 for an unsatisfiable one.
pub fn respond(request: &HeaderMap, content: Content) -> Response<Bytes> {
    let tag = content.etag.clone().unwrap_or_else(|| etag(&content.body));
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content.content_type.clone())
        .header(header::CACHE_CONTROL, content.cache_control.clone())
        .header(header::ETAG, &tag);
    if content.ranges {
        builder = builder.header(header::ACCEPT_RANGES, "bytes");
    }
    if none_match(request, &tag) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Bytes::new())
            .unwrap_or_default();
    }
    let len = content.body.len() as u64;
    let range = if content.ranges && if_range_holds(request, &tag) {
        request
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_range(v, len))
    } else {
        None
    };
    match range {
        None => builder.body(content.body).unwrap_or_default(),
        Some(Err(Unsatisfiable)) => {
            let mut response = builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Bytes::new())
                .unwrap_or_default();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(NEVER));
            response
        }
        Some(Ok((first, last))) => {
            let body = content
                .body
                .slice(usize::try_from(first).unwrap_or(0)..usize::try_from(last + 1).unwrap_or(0));
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {first}-{last}/{len}"))
                .body(body)
                .unwrap_or_default()
        }
    }
}

/// `If-None-Match` with `*` or a tag equal to `tag` (weak comparison, as RFC 9110 asks for it).
fn none_match(request: &HeaderMap, tag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// Without `If-Range` a range applies; with it, only if it names the current (strong) tag. A date
/// never matches: responses carry no Last-Modified.
fn if_range_holds(request: &HeaderMap, tag: &str) -> bool {
    match request.get(header::IF_RANGE) {
        None => true,
        Some(v) => v.to_str().is_ok_and(|v| v.trim() == tag),
    }
}

/// A range that lies wholly past the end of the body.
#[derive(Debug, PartialEq, Eq)]
struct Unsatisfiable;

/// Parses a `Range` header against a body of `len` bytes into inclusive bounds. `None` means
/// "ignore it and send everything": not a bytes range, malformed, or several ranges (allowed
/// by RFC 9110, and no player asks for several).
fn parse_range(value: &str, len: u64) -> Option<Result<(u64, u64), Unsatisfiable>> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Absurdly long numbers are still numbers: saturate rather than refuse.
        Some(s.parse().unwrap_or(u64::MAX))
    };
    if start.is_empty() {
        // `bytes=-N`: the last N bytes.
        let suffix = number(end)?;
        if suffix == 0 || len == 0 {
            return Some(Err(Unsatisfiable));
        }
        return Some(Ok((len.saturating_sub(suffix), len - 1)));
    }
    let first = number(start)?;
    let last = if end.is_empty() {
        u64::MAX
    } else {
        number(end)?
    };
    if last < first {
        return None;
    }
    if first >= len {
        return Some(Err(Unsatisfiable));
    }
    Some(Ok((first, last.min(len - 1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn segment() -> Content {
        Content::new(
            HeaderValue::from_static("video/mp2t"),
            SEGMENT,
            Bytes::from_static(b"0123456789"),
        )
        .with_ranges()
    }

    #[test]
    fn full_response_carries_validators() {
        let response = respond(&HeaderMap::new(), segment());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "video/mp2t");
        assert_eq!(headers[header::CACHE_CONTROL], SEGMENT);
        assert_eq!(headers[header::ACCEPT_RANGES], "bytes");
        assert_eq!(headers[header::ETAG], etag(b"0123456789").as_str());
        assert_eq!(response.body().as_ref(), b"0123456789");
    }

    #[test]
    fn etag_depends_on_bytes_only() {
        assert_eq!(etag(b"abc"), etag(b"abc"));
        assert_ne!(etag(b"abc"), etag(b"abd"));
        let tag = etag(b"abc");
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    }

    #[test]
    fn if_none_match_gives_304() {
        let tag = etag(b"0123456789");
        for value in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".to_owned(),
        ] {
            let response = respond(&request(&[(header::IF_NONE_MATCH, &value)]), segment());
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{value}");
            assert!(response.body().is_empty());
            assert_eq!(response.headers()[header::ETAG], tag.as_str());
            assert_eq!(response.headers()[header::CACHE_CONTROL], SEGMENT);
        }
        let other = respond(&request(&[(header::IF_NONE_MATCH, "\"x\"")]), segment());
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn byte_ranges() {
        let cases = [
            ("bytes=0-3", Some("0123"), "bytes 0-3/10"),
            ("bytes=7-", Some("789"), "bytes 7-9/10"),
            ("bytes=-2", Some("89"), "bytes 8-9/10"),
            ("bytes=5-100", Some("56789"), "bytes 5-9/10"),
            ("bytes=-100", Some("0123456789"), "bytes 0-9/10"),
            ("bytes=10-", None, "bytes */10"),
        ];
        for (range, body, content_range) in cases {
            let response = respond(&request(&[(header::RANGE, range)]), segment());
            match body {
                Some(body) => {
                    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
                    assert_eq!(response.body().as_ref(), body.as_bytes(), "{range}");
                }
                None => assert_eq!(
                    response.status(),
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "{range}"
                ),
            }
            assert_eq!(response.headers()[header::CONTENT_RANGE], content_range);
        }
        for ignored in [
            "bytes=0-1,3-4",
            "bytes=5-2",
            "items=0-1",
            "bytes=a-b",
            "bytes=",
        ] {
            let response = respond(&request(&[(header::RANGE, ignored)]), segment());
            assert_eq!(response.status(), StatusCode::OK, "{ignored}");
            assert_eq!(response.body().len(), 10);
        }
    }

    #[test]
    fn if_range_and_unranged_content() {
        let tag = etag(b"0123456789");
        let current = respond(
            &request(&[(header::RANGE, "bytes=0-0"), (header::IF_RANGE, &tag)]),
            segment(),
        );
        assert_eq!(current.status(), StatusCode::PARTIAL_CONTENT);
        let stale = respond(
            &request(&[(header::RANGE, "bytes=0-0"), (header::IF_RANGE, "\"old\"")]),
            segment(),
        );
        assert_eq!(stale.status(), StatusCode::OK);
        let page = Content::new(
            HeaderValue::from_static("text/html"),
            PAGE,
            Bytes::from_static(b"<p>"),
        );
        let response = respond(&request(&[(header::RANGE, "bytes=0-0")]), page);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key(header::ACCEPT_RANGES));
    }
}
