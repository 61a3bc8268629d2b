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

/// The master playlist of a file: what players are given. Its media playlists and segments
/// lie beside it (see [`Leaf`]), so their URIs in playlists are relative.
pub fn playlist(rel: &RelPath) -> String {
    format!("/hls/{}/index.m3u8", encoded(rel))
}

/// Which media of a file a playlist or segment URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// The video with the default audio track.
    Main,
    /// Alternate audio rendition `n`.
    Audio(usize),
}

/// The last component of a `/hls/<file>/…` URL: one flat name per thing, so a file's own path
/// (which may hold any name) never mixes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// `index.m3u8`
    Master,
    /// `video.m3u8`, `audio<n>.m3u8`
    Playlist(Media),
    /// `<k>.ts`, `audio<n>-<k>.ts`
    Segment(Media, u64),
    /// `subs<n>.m3u8`
    Subtitles(usize),
    /// `subs<n>-<k>.vtt`
    Cues(usize, u64),
}

impl Leaf {
    /// The name, relative to the master playlist.
    pub fn name(self) -> String {
        match self {
            Leaf::Master => "index.m3u8".into(),
            Leaf::Playlist(Media::Main) => "video.m3u8".into(),
            Leaf::Playlist(Media::Audio(n)) => format!("audio{n}.m3u8"),
            Leaf::Segment(Media::Main, k) => format!("{k}.ts"),
            Leaf::Segment(Media::Audio(n), k) => format!("audio{n}-{k}.ts"),
            Leaf::Subtitles(n) => format!("subs{n}.m3u8"),
            Leaf::Cues(n, k) => format!("subs{n}-{k}.vtt"),
        }
    }

    fn parse(leaf: &str) -> Option<Leaf> {
        match leaf {
            "index.m3u8" => return Some(Leaf::Master),
            "video.m3u8" => return Some(Leaf::Playlist(Media::Main)),
            _ => {}
        }
        if let Some(k) = leaf.strip_suffix(".ts").and_then(number) {
            return Some(Leaf::Segment(Media::Main, k));
        }
        if let Some(rest) = leaf.strip_prefix("audio") {
            if let Some(n) = rest.strip_suffix(".m3u8").and_then(index) {
                return Some(Leaf::Playlist(Media::Audio(n)));
            }
            let (n, k) = rest.strip_suffix(".ts")?.split_once('-')?;
            return Some(Leaf::Segment(Media::Audio(index(n)?), number(k)?));
        }
        let rest = leaf.strip_prefix("subs")?;
        if let Some(n) = rest.strip_suffix(".m3u8").and_then(index) {
            return Some(Leaf::Subtitles(n));
        }
        let (n, k) = rest.strip_suffix(".vtt")?.split_once('-')?;
        Some(Leaf::Cues(index(n)?, number(k)?))
    }
}

/// A decimal number of at most 19 digits, nothing else.
fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A track index: a small number.
fn index(digits: &str) -> Option<usize> {
    number(digits)
        .filter(|n| *n < 1000)
        .and_then(|n| usize::try_from(n).ok())
}

/// Where a logged-in user gets a signed link to a file's playlist.
pub fn share(rel: &RelPath) -> String {
    format!("/link/{}", encoded(rel))
}

/// What the relative URIs of a playlist carry from the request that fetched it: the viewer's
/// session, and the signed link it came with (a player that cannot log in gets every segment by
/// the same link).
#[derive(Debug, Clone, Copy, Default)]
pub struct Carried<'a> {
    pub session: Option<crate::stream::SessionId>,
    pub link: Option<&'a str>,
}

impl Carried<'_> {
    /// `?s=…&t=…`, or nothing. A link token is digits, `-` and hex: nothing to encode.
    pub fn query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(session) = self.session {
            pairs.push(format!("s={session}"));
        }
        if let Some(link) = self.link {
            pairs.push(format!("t={link}"));
        }
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
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
    /// Something under `/hls/<file>/`.
    Hls(RelPath, Leaf),
    Health,
    Metrics,
    Status,
    /// The login form and its POST.
    Login,
    /// `POST /logout`.
    Logout,
    /// A signed link to a file's playlist, made for a logged-in user (`/link/<file>`).
    Link(RelPath),
}

impl Route {
    /// Whether pages on other origins may read the response (CORS): media and the player's
    /// scripts, not listings or status pages.
    pub fn cross_origin(&self) -> bool {
        matches!(self, Route::Hls(..) | Route::Asset(_))
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
    if path == "/login" {
        return Some(Route::Login);
    }
    if path == "/logout" {
        return Some(Route::Logout);
    }
    if let Some(rest) = path.strip_prefix("/link/") {
        return RelPath::parse(rest)
            .filter(|r| !r.is_root())
            .map(Route::Link);
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
    Some(Route::Hls(rel, Leaf::parse(leaf)?))
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
            assert_eq!(route(&href), Some(Route::Hls(r.clone(), Leaf::Master)));
            assert_eq!(route(&watch(&r)), Some(Route::Watch(r.clone())));
            assert_eq!(route(&share(&r)), Some(Route::Link(r.clone())));
            assert_eq!(route(&folder(&r)), Some(Route::Folder(r)));
        }
    }

    #[test]
    fn routes_segments_and_refuses_junk() {
        assert_eq!(
            route("/hls/x.mp4/12.ts"),
            Some(Route::Hls(rel("x.mp4"), Leaf::Segment(Media::Main, 12)))
        );
        for leaf in [
            Leaf::Master,
            Leaf::Playlist(Media::Main),
            Leaf::Playlist(Media::Audio(2)),
            Leaf::Segment(Media::Main, 0),
            Leaf::Segment(Media::Audio(1), 77),
            Leaf::Subtitles(0),
            Leaf::Cues(3, 12),
        ] {
            let url = format!("/hls/a/audio/1/{}", leaf.name());
            assert_eq!(
                route(&url),
                Some(Route::Hls(rel("a/audio/1"), leaf)),
                "{url}"
            );
        }
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
            "/hls/x.mp4/audio.m3u8",
            "/hls/x.mp4/audio1-.ts",
            "/hls/x.mp4/audio-1-2.ts",
            "/hls/x.mp4/audio99999-1.ts",
            "/hls/x.mp4/subs1-2.ts",
            "/hls/x.mp4/subs1.vtt",
            "/hls/x.mp4/video1.m3u8",
            "/link/",
            "/login/",
        ] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }
}
