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

/// Fetches one version of the playlist: status, media type and the per-version rules.
pub fn fetch(url: &str) -> Result<Playlist, String> {
    let reply = http::get_ok(url, PLAYLIST_MIME)?;
    let text = reply.utf8()?;
    parse(text).map_err(|e| format!("{e}\n--- playlist\n{text}"))
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
