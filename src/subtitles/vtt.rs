//! WebVTT (`.vtt`) read back: cue blocks after the `WEBVTT` header; NOTE, STYLE and REGION blocks skipped.

use super::{Cue, SubtitleError, timestamp, webvtt::payload};

pub fn parse(text: &str) -> Result<Vec<Cue>, SubtitleError> {
    if !text.trim_start().starts_with("WEBVTT") {
        return Err(SubtitleError::Malformed {
            line: 1,
            what: "no WEBVTT header",
        });
    }
    let mut cues = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((number, line)) = lines.next() {
        let Some((start, rest)) = line.split_once("-->") else {
            continue;
        };
        // Cue settings (`line:0 align:start`) follow the end time.
        let end = rest.split_whitespace().next().unwrap_or_default();
        let (Some(start), Some(end)) = (timestamp(start), timestamp(end)) else {
            return Err(SubtitleError::Malformed {
                line: number + 1,
                what: "unreadable timing line",
            });
        };
        let mut body = Vec::new();
        while let Some((_, next)) = lines.peek() {
            if next.trim().is_empty() {
                break;
            }
            body.push(*next);
            lines.next();
        }
        cues.push(Cue {
            start,
            end,
            text: payload(&unescape(&body.join("\n"))),
        });
    }
    Ok(cues)
}

/// WebVTT's character references back to characters, so that [`payload`] escapes them once.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&lrm;", "\u{200e}")
        .replace("&rlm;", "\u{200f}")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cues_notes_and_settings() {
        let vtt = "WEBVTT - a title\n\nNOTE a comment\nover two lines\n\nintro\n00:01.000 --> 00:02.500 line:0\n<v Bob>Hi &amp; bye</v>\n\n01:00:00.000 --> 01:00:01.000\n1 &lt; 2\n";
        let cues = parse(vtt).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!(cues[0].start, Duration::from_secs(1));
        assert_eq!(cues[0].text, "Hi &amp; bye");
        assert_eq!(cues[1].start, Duration::from_secs(3600));
        assert_eq!(cues[1].text, "1 &lt; 2");
        assert!(parse("1\n00:01.000 --> 00:02.000\nx\n").is_err());
    }
}
