//! SubRip (`.srt`): numbered blocks of a timing line and text lines, separated by blank lines.

use super::{Cue, SubtitleError, timestamp, webvtt::payload};

/// The cues of SubRip `text`. Blocks without a readable timing line are skipped (files in the
/// wild carry stray lines); a file with none at all is an error.
pub fn parse(text: &str) -> Result<Vec<Cue>, SubtitleError> {
    let mut cues = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut timing_lines = 0;
    while let Some((number, line)) = lines.next() {
        let Some((start, end)) = line.split_once("-->") else {
            continue;
        };
        timing_lines += 1;
        // A position (`X1:… Y2:…`) may follow the end time.
        let end = end.split_whitespace().next().unwrap_or_default();
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
            text: payload(&body.join("\n")),
        });
    }
    if timing_lines == 0 {
        return Err(SubtitleError::Empty);
    }
    Ok(cues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn blocks_with_markup_and_crlf() {
        let srt = "1\r\n00:00:01,000 --> 00:00:03,500\r\nHello <i>world</i> & <font color=\"red\">co</font>\r\n\r\n\
                   2\r\n00:00:04,000 --> 00:00:06,000 X1:10 X2:20\r\n{\\an8}Two\r\nlines\r\n";
        let cues = parse(srt).unwrap();
        assert_eq!(cues.len(), 2);
        assert_eq!(cues[0].start, Duration::from_secs(1));
        assert_eq!(cues[0].end, Duration::from_millis(3500));
        assert_eq!(cues[0].text, "Hello <i>world</i> &amp; co");
        assert_eq!(cues[1].text, "Two\nlines");
    }

    #[test]
    fn a_bad_timing_line_is_an_error_and_no_timing_is_empty() {
        assert!(matches!(
            parse("1\n00:00:xx,000 --> 00:00:02,000\nhi\n"),
            Err(SubtitleError::Malformed { line: 2, .. })
        ));
        assert_eq!(parse("just text\n"), Err(SubtitleError::Empty));
    }
}
