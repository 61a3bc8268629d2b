//! Text subtitles: cues read from SubRip, WebVTT and ASS/SSA files, written back as WebVTT segments on a stream's plan.
//!
//! Pure code over bytes, no GStreamer. Sidecar files beside the media (`film.srt`,
//! `film.fr.srt`, `.vtt`, `.ass`) are read whole; text decoded from UTF-8 (with or without a
//! byte-order mark), UTF-16 with a mark, or a legacy encoding guessed from the bytes. Text that
//! GStreamer demuxes from the media itself arrives cue by cue and is turned into payloads by
//! [`from_pango`], [`from_plain`] and [`from_ass_event`].

mod ass;
mod markup;
mod srt;
mod text;
mod vtt;
mod webvtt;

use std::time::Duration;

pub use ass::from_event as from_ass_event;
pub use markup::{from_pango, from_plain};
pub use text::decode;
pub use webvtt::{pts, segment};

/// One subtitle: shown from `start` until `end`, in the subtitle file's own time (which the
/// media's timeline shares: 0 is the media's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start: Duration,
    pub end: Duration,
    /// The text as a WebVTT cue payload: lines separated by `\n`, `<i>`, `<b>` and `<u>` kept
    /// where the source had them, nothing else marked up, `&`, `<` and `>` escaped (every reader
    /// here escapes, and [`segment`] writes it as it is).
    pub text: String,
}

/// Subtitle file formats read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    SubRip,
    WebVtt,
    /// Advanced SubStation Alpha and SubStation Alpha: read as text, styling dropped.
    Ass,
}

impl Format {
    /// The format a file name's extension says, if it is one read here.
    pub fn from_name(name: &str) -> Option<Format> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "srt" => Some(Format::SubRip),
            "vtt" => Some(Format::WebVtt),
            "ass" | "ssa" => Some(Format::Ass),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubtitleError {
    #[error("no cue found")]
    Empty,
    #[error("line {line}: {what}")]
    Malformed { line: usize, what: &'static str },
    #[error("over {MAX_CUES} cues")]
    TooMany,
}

/// Most cues a file may hold: a 3-hour film has a few thousand.
pub const MAX_CUES: usize = 100_000;

/// The cues of a subtitle file's `bytes`, in `format`, sorted by start; cues without text or
/// with an end not after their start are dropped.
pub fn parse(bytes: &[u8], format: Format) -> Result<Vec<Cue>, SubtitleError> {
    let text = decode(bytes);
    let mut cues = match format {
        Format::SubRip => srt::parse(&text)?,
        Format::WebVtt => vtt::parse(&text)?,
        Format::Ass => ass::parse(&text)?,
    };
    cues.retain(|c| c.end > c.start && has_text(&c.text));
    if cues.is_empty() {
        return Err(SubtitleError::Empty);
    }
    if cues.len() > MAX_CUES {
        return Err(SubtitleError::TooMany);
    }
    cues.sort_by_key(|c| (c.start, c.end));
    Ok(cues)
}

/// Whether a payload shows anything once its tags are left out.
pub fn has_text(payload: &str) -> bool {
    ["<i>", "</i>", "<b>", "</b>", "<u>", "</u>"]
        .iter()
        .fold(payload.to_owned(), |s, tag| s.replace(tag, ""))
        .chars()
        .any(|c| !c.is_whitespace())
}

/// Reads `h:mm:ss[.,]fff`, `mm:ss.fff` or `h:mm:ss.cc` (ASS centiseconds) into a duration.
fn timestamp(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (clock, fraction) = match s.rfind(['.', ',']) {
        Some(at) => (&s[..at], &s[at + 1..]),
        None => (s, ""),
    };
    let mut seconds: u64 = 0;
    let parts: Vec<&str> = clock.split(':').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    for (i, part) in parts.iter().enumerate() {
        let value: u64 = part.trim().parse().ok()?;
        // Minutes and seconds below 60, except in the first field.
        if i > 0 && value >= 60 {
            return None;
        }
        seconds = seconds.checked_mul(60)?.checked_add(value)?;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = if fraction.is_empty() {
        0
    } else {
        let digits: u32 = fraction.parse().ok()?;
        digits * 10u32.pow(9 - fraction.len() as u32)
    };
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_spelling() {
        let ms = Duration::from_millis;
        assert_eq!(timestamp("00:00:01,500"), Some(ms(1500)));
        assert_eq!(timestamp("01:02:03.004"), Some(ms(3_723_004)));
        assert_eq!(timestamp("02:03.250"), Some(ms(123_250)));
        assert_eq!(timestamp("0:00:01.50"), Some(ms(1500)));
        assert_eq!(
            timestamp("100:00:00.000"),
            Some(Duration::from_secs(360_000))
        );
        assert_eq!(timestamp("00:61:00.000"), None);
        assert_eq!(timestamp("aa:00:00.000"), None);
        assert_eq!(timestamp("00:00:00.0000000000"), None);
        assert_eq!(timestamp(""), None);
    }

    #[test]
    fn a_legacy_encoded_srt_with_an_empty_cue() {
        let srt = b"1\r\n00:00:02,000 --> 00:00:04,000\r\nD\xe9j\xe0 vu\r\n\r\n\
                    2\r\n00:00:00,500 --> 00:00:01,000\r\n<i></i>\r\n\r\n\
                    3\r\n00:00:00,000 --> 00:00:01,000\r\nfirst\r\n";
        let cues = parse(srt, Format::SubRip).unwrap();
        let texts: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["first", "Déjà vu"]);
        assert_eq!(parse(b"", Format::SubRip), Err(SubtitleError::Empty));
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::from_name("Film.fr.SRT"), Some(Format::SubRip));
        assert_eq!(Format::from_name("a.vtt"), Some(Format::WebVtt));
        assert_eq!(Format::from_name("a.ssa"), Some(Format::Ass));
        assert_eq!(Format::from_name("a.sub"), None);
        assert_eq!(Format::from_name("srt"), None);
    }
}
