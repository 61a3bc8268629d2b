//! A strict reader of the server's media playlists and the RFC 8216 rules they must follow.

use std::thread;
use std::time::{Duration, Instant};

use super::http;

/// Pause between playlist polls: often enough to catch several versions of a growing playlist
/// (a 6 s clip transcodes in well under a second), rare enough not to load the server.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Media type of a playlist (RFC 8216 section 4).
pub const PLAYLIST_MIME: &str = "application/vnd.apple.mpegurl";

/// Segments the server waits for before answering the first playlist request.
pub const FIRST_RESPONSE_SEGMENTS: usize = 3;

/// One `#EXTINF` and its URI.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub duration: f64,
    /// The duration as written, to check that it has decimals.
    pub duration_text: String,
    pub uri: String,
}

/// A media playlist as published at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Playlist {
    pub lines: Vec<String>,
    pub version: u32,
    pub target_duration: u64,
    pub media_sequence: u64,
    pub playlist_type: String,
    pub independent_segments: bool,
    pub segments: Vec<Segment>,
    pub ended: bool,
}

impl Playlist {
    pub fn total_duration(&self) -> f64 {
        self.segments.iter().map(|s| s.duration).sum()
    }
}

/// Parses a playlist and checks what must hold for every version the server publishes.
pub fn parse(text: &str) -> Result<Playlist, String> {
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.first().map(String::as_str) != Some("#EXTM3U") {
        return Err(format!("does not start with #EXTM3U: {:?}", lines.first()));
    }
    let mut version = None;
    let mut target_duration = None;
    let mut media_sequence = None;
    let mut playlist_type = None;
    let mut independent_segments = false;
    let mut segments = Vec::new();
    let mut pending: Option<(f64, String)> = None;
    let mut ended = false;
    let once = |slot: &mut Option<String>, tag: &str, value: &str| match slot {
        Some(_) => Err(format!("{tag} appears twice")),
        None => {
            *slot = Some(value.to_owned());
            Ok(())
        }
    };
    for (i, line) in lines.iter().enumerate().skip(1) {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if ended {
            return Err(format!("line {n} {line:?} follows #EXT-X-ENDLIST"));
        }
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            once(&mut version, "#EXT-X-VERSION", v)?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            once(&mut target_duration, "#EXT-X-TARGETDURATION", v)?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            once(&mut media_sequence, "#EXT-X-MEDIA-SEQUENCE", v)?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
            once(&mut playlist_type, "#EXT-X-PLAYLIST-TYPE", v)?;
        } else if line == "#EXT-X-INDEPENDENT-SEGMENTS" {
            independent_segments = true;
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            if pending.is_some() {
                return Err(format!("line {n}: #EXTINF without a URI before it"));
            }
            let text = v.split(',').next().unwrap_or("").to_owned();
            let duration: f64 = text
                .parse()
                .map_err(|_| format!("line {n}: bad #EXTINF duration {text:?}"))?;
            if !(duration.is_finite() && duration > 0.0) {
                return Err(format!(
                    "line {n}: #EXTINF duration {duration} is not positive"
                ));
            }
            pending = Some((duration, text));
        } else if line.starts_with('#') {
            // Other tags and comments are allowed by RFC 8216 and ignored by clients.
        } else {
            let Some((duration, duration_text)) = pending.take() else {
                return Err(format!("line {n}: URI {line:?} without #EXTINF"));
            };
            segments.push(Segment {
                duration,
                duration_text,
                uri: line.clone(),
            });
        }
    }
    if pending.is_some() {
        return Err("the last #EXTINF has no URI".into());
    }

    let version: u32 = version
        .ok_or("no #EXT-X-VERSION")?
        .parse()
        .map_err(|_| "#EXT-X-VERSION is not an integer")?;
    if version < 3 {
        return Err(format!(
            "#EXT-X-VERSION:{version}, but decimal #EXTINF durations need version 3 or more"
        ));
    }
    let target_text = target_duration.ok_or("no #EXT-X-TARGETDURATION")?;
    let target_duration: u64 = target_text
        .parse()
        .map_err(|_| format!("#EXT-X-TARGETDURATION:{target_text} is not a decimal integer"))?;
    if target_duration == 0 {
        return Err("#EXT-X-TARGETDURATION is 0".into());
    }
    // RFC 8216 4.3.3.2: a missing tag means 0.
    let media_sequence: u64 = media_sequence
        .as_deref()
        .unwrap_or("0")
        .parse()
        .map_err(|_| "#EXT-X-MEDIA-SEQUENCE is not an integer")?;
    if media_sequence != 0 {
        return Err(format!("#EXT-X-MEDIA-SEQUENCE:{media_sequence}, wanted 0"));
    }
    let playlist_type = playlist_type.ok_or("no #EXT-X-PLAYLIST-TYPE")?;
    if playlist_type != "EVENT" && playlist_type != "VOD" {
        return Err(format!(
            "#EXT-X-PLAYLIST-TYPE:{playlist_type}, wanted EVENT or VOD"
        ));
    }
    if playlist_type == "VOD" && !ended {
        return Err("a VOD playlist without #EXT-X-ENDLIST".into());
    }
    if !independent_segments {
        return Err("no #EXT-X-INDEPENDENT-SEGMENTS".into());
    }
    // Segment URIs carry the viewer's session as `?s=<16 hex digits>`, the same on every one.
    let session = segments
        .first()
        .and_then(|s| s.uri.split_once('?'))
        .map(|(_, query)| query.to_owned());
    if let Some(query) = &session {
        let id = query.strip_prefix("s=").unwrap_or("");
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("segment URI query {query:?} is not a session id"));
        }
    }
    for (i, segment) in segments.iter().enumerate() {
        let expected = match &session {
            Some(query) => format!("{i}.ts?{query}"),
            None => format!("{i}.ts"),
        };
        if segment.uri != expected {
            return Err(format!(
                "segment URI {:?}, wanted {expected:?}",
                segment.uri
            ));
        }
        if !segment.duration_text.contains('.') {
            return Err(format!(
                "#EXTINF:{} for {expected} has no decimals",
                segment.duration_text
            ));
        }
        // RFC 8216 4.3.3.1: the rounded EXTINF must not exceed the target duration.
        if segment.duration.round() as u64 > target_duration {
            return Err(format!(
                "#EXTINF:{} of {expected} rounds above #EXT-X-TARGETDURATION:{target_duration}",
                segment.duration_text
            ));
        }
    }
    Ok(Playlist {
        lines,
        version,
        target_duration,
        media_sequence,
        playlist_type,
        independent_segments,
        segments,
        ended,
    })
}

/// Checks that `later` is a legal successor of `earlier` for an EVENT playlist (RFC 8216 6.2.1):
/// the target duration never changes and lines are only appended.
pub fn check_successor(earlier: &Playlist, later: &Playlist) -> Result<(), String> {
    if earlier.target_duration != later.target_duration {
        return Err(format!(
            "#EXT-X-TARGETDURATION changed from {} to {}",
            earlier.target_duration, later.target_duration
        ));
    }
    let meaningful = |p: &Playlist| -> Vec<String> {
        p.lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .cloned()
            .collect()
    };
    let (old, new) = (meaningful(earlier), meaningful(later));
    if new.len() < old.len() || new[..old.len()] != old[..] {
        let at = old.iter().zip(&new).position(|(a, b)| a != b);
        return Err(format!(
            "an EVENT playlist may only grow, but the earlier version is not a prefix of the later \
             (first difference at line {:?}):\n--- earlier\n{}\n--- later\n{}",
            at.map(|i| i + 1),
            old.join("\n"),
            new.join("\n")
        ));
    }
    Ok(())
}

/// Checks a playlist that ended: its length matches the source, and the segmenter honoured the
/// requested segment duration at least roughly (a 6 s clip in 1 s segments is not one segment).
pub fn check_final(
    playlist: &Playlist,
    source_duration: f64,
    segment_duration: f64,
) -> Result<(), String> {
    if !playlist.ended {
        return Err("no #EXT-X-ENDLIST".into());
    }
    if playlist.segments.is_empty() {
        return Err("no segments".into());
    }
    super::check_duration(
        "the sum of #EXTINF",
        playlist.total_duration(),
        source_duration,
    )?;
    let at_least = (source_duration / (2.0 * segment_duration)).floor() as usize;
    if playlist.segments.len() < at_least {
        return Err(format!(
            "{} segments for {source_duration:.3} s with --segment-duration {segment_duration}; \
             wanted at least {at_least}",
            playlist.segments.len()
        ));
    }
    Ok(())
}

/// Fetches one version of the playlist: status, media type and the per-version rules. A master
/// playlist is checked and its variant's media playlist fetched in its place.
pub fn fetch(url: &str) -> Result<Playlist, String> {
    let reply = http::get_ok(url, PLAYLIST_MIME)?;
    let text = reply.utf8()?;
    if text.contains("#EXT-X-STREAM-INF") {
        let master = parse_master(text).map_err(|e| format!("{e}\n--- master playlist\n{text}"))?;
        return fetch(&resolve(url, &master.variant));
    }
    parse(text).map_err(|e| format!("{e}\n--- playlist\n{text}"))
}

/// A master playlist: its one variant and its renditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Master {
    /// The variant's URI.
    pub variant: String,
    /// The EXT-X-STREAM-INF attributes.
    pub info: Vec<(String, String)>,
    /// Each EXT-X-MEDIA's attributes.
    pub media: Vec<Vec<(String, String)>>,
}

impl Master {
    pub fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
        attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The renditions of `kind` (`AUDIO`, `SUBTITLES`).
    pub fn renditions(&self, kind: &str) -> Vec<&Vec<(String, String)>> {
        self.media
            .iter()
            .filter(|m| Self::attribute(m, "TYPE") == Some(kind))
            .collect()
    }
}

/// Splits an attribute list (`A=1,B="x,y"`) into names and unquoted values.
pub fn attributes(list: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = list;
    while let Some((name, after)) = rest.split_once('=') {
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            let tail = quoted.get(end + 1..).unwrap_or("");
            (&quoted[..end], tail.strip_prefix(',').unwrap_or(tail))
        } else {
            match after.split_once(',') {
                Some((value, next)) => (value, next),
                None => (after, ""),
            }
        };
        out.push((name.trim().to_owned(), value.to_owned()));
        rest = next;
    }
    out
}

/// Parses a master playlist and checks RFC 8216's rules for it: one variant with BANDWIDTH and
/// CODECS, groups it names exist, NAMEs unique per group, at most one DEFAULT per group.
pub fn parse_master(text: &str) -> Result<Master, String> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.first() != Some(&"#EXTM3U") {
        return Err("does not start with #EXTM3U".into());
    }
    let mut media = Vec::new();
    let mut info = None;
    let mut variant = None;
    for (i, line) in lines.iter().enumerate() {
        if let Some(list) = line.strip_prefix("#EXT-X-MEDIA:") {
            media.push(attributes(list));
        } else if let Some(list) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            if info.is_some() {
                return Err("more than one variant".into());
            }
            info = Some(attributes(list));
            variant = lines.get(i + 1).map(|l| (*l).to_owned());
        } else if line.starts_with("#EXTINF") {
            return Err("a master playlist lists a segment".into());
        }
    }
    let info = info.ok_or("no #EXT-X-STREAM-INF")?;
    let variant = variant
        .filter(|v| !v.starts_with('#') && !v.is_empty())
        .ok_or("no variant URI")?;
    for required in ["BANDWIDTH", "CODECS"] {
        Master::attribute(&info, required).ok_or(format!("the variant has no {required}"))?;
    }
    for (kind, attribute) in [("AUDIO", "AUDIO"), ("SUBTITLES", "SUBTITLES")] {
        let group = Master::attribute(&info, attribute);
        let members: Vec<_> = media
            .iter()
            .filter(|m| Master::attribute(m, "TYPE") == Some(kind))
            .collect();
        if members.is_empty() != group.is_none() {
            return Err(format!(
                "{attribute} group {group:?} and {} renditions",
                members.len()
            ));
        }
        let mut names: Vec<&str> = members
            .iter()
            .filter_map(|m| Master::attribute(m, "NAME"))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        if names.len() != count || count != members.len() {
            return Err(format!("{kind} renditions without a unique NAME"));
        }
        let defaults = members
            .iter()
            .filter(|m| Master::attribute(m, "DEFAULT") == Some("YES"))
            .count();
        if defaults > 1 {
            return Err(format!("{defaults} DEFAULT {kind} renditions"));
        }
        if members
            .iter()
            .any(|m| Master::attribute(m, "GROUP-ID") != group)
        {
            return Err(format!("a {kind} rendition outside group {group:?}"));
        }
    }
    Ok(Master {
        variant,
        info,
        media,
    })
}

/// `href` (relative or absolute-path) resolved against the URL `base` it was found in.
pub fn resolve(base: &str, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_owned();
    }
    if href.starts_with('/') {
        let origin_end = base.find("://").map_or(0, |i| i + 3);
        let path_start = base[origin_end..]
            .find('/')
            .map_or(base.len(), |i| i + origin_end);
        return format!("{}{href}", &base[..path_start]);
    }
    let dir_end = base
        .split('?')
        .next()
        .unwrap_or(base)
        .rfind('/')
        .map_or(0, |i| i + 1);
    format!("{}{href}", &base[..dir_end])
}

/// Requests the playlist until it has `#EXT-X-ENDLIST`, checking the first response's readiness and
/// each version against the one before. Returns the final playlist and every distinct version seen.
/// `kind` is the `#EXT-X-PLAYLIST-TYPE` the server must answer with: a VOD playlist is complete in
/// the first response and identical in the next.
pub fn poll_until_ended(
    url: &str,
    kind: &str,
    timeout: Duration,
) -> Result<(Playlist, Vec<Playlist>), String> {
    let deadline = Instant::now() + timeout;
    let first = fetch(url)?;
    if first.playlist_type != kind {
        return Err(format!(
            "#EXT-X-PLAYLIST-TYPE:{}, wanted {kind}",
            first.playlist_type
        ));
    }
    if kind == "VOD" {
        let again = fetch(url)?;
        if again != first {
            return Err("a VOD playlist changed between two requests".into());
        }
        return Ok((first.clone(), vec![first]));
    }
    if !first.ended && first.segments.len() < FIRST_RESPONSE_SEGMENTS {
        return Err(format!(
            "the first response lists {} segments and no #EXT-X-ENDLIST; the server should wait \
             for {FIRST_RESPONSE_SEGMENTS} or the end",
            first.segments.len()
        ));
    }
    let mut versions = vec![first];
    loop {
        let last = versions.last().expect("never empty");
        if last.ended {
            return Ok((last.clone(), versions));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no #EXT-X-ENDLIST within {timeout:?}; last version has {} segments",
                last.segments.len()
            ));
        }
        thread::sleep(POLL_INTERVAL);
        let next = fetch(url)?;
        check_successor(last, &next)?;
        if next != *last {
            versions.push(next);
        }
    }
}
