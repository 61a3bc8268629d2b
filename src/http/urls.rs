//! The URL layout: percent-encoding of library paths into hrefs and the request router's parse.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::library::RelPath;

/// Everything but RFC 3986 unreserved characters is encoded, so any file name survives a URL.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Longest request path (bytes, still encoded) the router looks at.
pub const MAX_REQUEST_PATH: usize = 8192;

fn encoded(rel: &RelPath) -> String {
    rel.components()
        .iter()
        .map(|c| utf8_percent_encode(c, COMPONENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// `/` for the root, `/browse/a/b/` for a subfolder.
pub fn folder(rel: &RelPath) -> String {
    if rel.is_root() {
        "/".to_owned()
    } else {
        format!("/browse/{}/", encoded(rel))
    }
}

/// The media playlist of a file.
pub fn playlist(rel: &RelPath) -> String {
    format!("/hls/{}/index.m3u8", encoded(rel))
}

/// The player page of a file.
pub fn watch(rel: &RelPath) -> String {
    format!("/watch/{}", encoded(rel))
}

/// What a request path asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// The player page of a file.
    Watch(RelPath),
    /// A file built into the server, by name (`/assets/<name>`).
    Asset(String),
    Folder(RelPath),
    Playlist(RelPath),
    Segment(RelPath, u64),
    Health,
    Metrics,
    Status,
}

impl Route {
    /// Whether pages on other origins may read the response (CORS): media and the player's
    /// scripts, not listings or status pages.
    pub fn cross_origin(&self) -> bool {
        matches!(
            self,
            Route::Playlist(_) | Route::Segment(..) | Route::Asset(_)
        )
    }
}

/// Decodes a raw request path once and routes it. `None` means 404: undecodable, hostile or unknown.
pub fn route(raw: &str) -> Option<Route> {
    if raw.len() > MAX_REQUEST_PATH {
        return None;
    }
    let path = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    if path == "/" {
        return Some(Route::Folder(RelPath::default()));
    }
    if path == "/healthz" {
        return Some(Route::Health);
    }
    if path == "/metrics" {
        return Some(Route::Metrics);
    }
    if path == "/status" {
        return Some(Route::Status);
    }
    if let Some(rest) = path.strip_prefix("/browse/") {
        return RelPath::parse(rest).map(Route::Folder);
    }
    if let Some(rest) = path.strip_prefix("/watch/") {
        return RelPath::parse(rest)
            .filter(|r| !r.is_root())
            .map(Route::Watch);
    }
    if let Some(name) = path.strip_prefix("/assets/") {
        return (!name.contains('/')).then(|| Route::Asset(name.to_owned()));
    }
    let rest = path.strip_prefix("/hls/")?;
    let (file, leaf) = rest.rsplit_once('/')?;
    let rel = RelPath::parse(file).filter(|r| !r.is_root())?;
    if leaf == "index.m3u8" {
        return Some(Route::Playlist(rel));
    }
    let digits = leaf.strip_suffix(".ts")?;
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Route::Segment(rel, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn links_round_trip_through_the_router() {
        for name in [
            "a b/c.mp4",
            "Sub Dir & ü/it's <a> \"clip\".mp4",
            "100%/#?.mkv",
            "日本/映画.webm",
        ] {
            let r = rel(name);
            let href = playlist(&r);
            assert!(href.is_ascii(), "{href}");
            assert!(
                !href.contains(['"', '<', '>', '&', ' ', '#', '?']),
                "{href}"
            );
            assert_eq!(route(&href), Some(Route::Playlist(r.clone())));
            assert_eq!(route(&watch(&r)), Some(Route::Watch(r.clone())));
            assert_eq!(route(&folder(&r)), Some(Route::Folder(r)));
        }
    }

    #[test]
    fn routes_segments_and_refuses_junk() {
        assert_eq!(
            route("/hls/x.mp4/12.ts"),
            Some(Route::Segment(rel("x.mp4"), 12))
        );
        assert_eq!(route("/"), Some(Route::Folder(RelPath::default())));
        assert_eq!(route("/browse/"), Some(Route::Folder(RelPath::default())));
        assert_eq!(
            route("/assets/hls.min.js"),
            Some(Route::Asset("hls.min.js".into()))
        );
        for bad in [
            "/hls/x.mp4/.ts",
            "/hls/x.mp4/-1.ts",
            "/hls/x.mp4/1.ts.bak",
            "/hls/x.mp4/99999999999999999999.ts",
            "/hls/index.m3u8",
            "/hls/../etc/passwd/index.m3u8",
            "/hls/%2e%2e/x/index.m3u8",
            "/browse/%2e%2e/",
            "/browse/a%00b/",
            "/hls/%ff/index.m3u8",
            "/elsewhere",
            "/watch/",
            "/watch/%2e%2e/x.mp4",
            "/assets/a/b.js",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }
}
