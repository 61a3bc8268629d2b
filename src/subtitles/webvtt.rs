//! Segmented WebVTT for HLS: each segment holds the cues that overlap its time span, with the X-TIMESTAMP-MAP that ties its clock to the MPEG-TS video.

use std::fmt::Write;
use std::time::Duration;

use super::Cue;

/// The MPEG-TS clock: 90 kHz, 33 bits.
const PTS_HZ: u128 = 90_000;
const PTS_WRAP: u64 = 1 << 33;

/// The WebVTT document of one segment spanning [`from`, `to`) of the media: every cue that
/// overlaps it, with its own times (a cue that crosses a boundary is in both segments, and
/// players drop the repeat). `pts_at_zero` is the MPEG-TS PTS of media time 0 in the video's
/// segments (RFC 8216 section 3.5: the map says which PTS the WebVTT time 0 is).
pub fn segment(cues: &[Cue], from: Duration, to: Duration, pts_at_zero: u64) -> String {
    let mut out = String::from("WEBVTT\n");
    let _ = writeln!(
        out,
        "X-TIMESTAMP-MAP=MPEGTS:{},LOCAL:00:00:00.000",
        pts_at_zero % PTS_WRAP
    );
    for cue in cues.iter().filter(|c| c.start < to && c.end > from) {
        let _ = write!(
            out,
            "\n{} --> {}\n{}\n",
            clock(cue.start),
            clock(cue.end),
            cue.text
        );
    }
    // A blank line ends the last cue: clients that join segments (ffmpeg) would otherwise
    // read the next segment's header as more of its text.
    out.push('\n');
    out
}

/// `hh:mm:ss.ttt`.
fn clock(t: Duration) -> String {
    let ms = t.as_millis();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// PTS ticks of `t` (for callers working out `pts_at_zero`).
pub fn pts(t: Duration) -> u64 {
    (t.as_nanos() * PTS_HZ / 1_000_000_000) as u64 % PTS_WRAP
}

/// `raw` text as a WebVTT cue payload: `&`, `<` and `>` escaped, `<i>`, `<b>`, `<u>` (and their
/// ends) kept, any other tag and `{…}` override blocks dropped, blank lines removed (a blank line
/// would end the cue).
pub(super) fn payload(raw: &str) -> String {
    const KEPT: [&str; 6] = ["<i>", "</i>", "<b>", "</b>", "<u>", "</u>"];
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    // How far a tag's end is looked for: markup is short, and a stray `<` must not make this
    // quadratic.
    const TAG_SPAN: usize = 256;
    let within = |s: &str, end: u8| s.bytes().take(TAG_SPAN).position(|b| b == end);
    while let Some(c) = rest.chars().next() {
        let kept = KEPT.iter().find(|t| {
            rest.len() >= t.len() && rest.as_bytes()[..t.len()].eq_ignore_ascii_case(t.as_bytes())
        });
        if let Some(tag) = kept {
            out.push_str(tag);
            rest = &rest[tag.len()..];
            continue;
        }
        let tag_end = match c {
            // A tag of another kind (`<font …>`, `<v Bob>`, `<c.x>`): dropped whole.
            '<' => within(rest, b'>').filter(|&end| {
                rest[1..end]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c.is_ascii_digit())
            }),
            '{' if rest.starts_with("{\\") => within(rest, b'}'),
            _ => None,
        };
        if let Some(end) = tag_end {
            rest = &rest[end + 1..];
            continue;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => {}
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(start_ms: u64, end_ms: u64, text: &str) -> Cue {
        Cue {
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            text: text.into(),
        }
    }

    #[test]
    fn a_segment_holds_what_overlaps_it_and_maps_its_clock() {
        let cues = [
            cue(500, 1500, "before"),
            cue(1500, 2500, "across"),
            cue(2000, 3000, "inside"),
            cue(4000, 5000, "after"),
        ];
        let two_s = Duration::from_secs(2);
        let doc = segment(&cues, two_s, 2 * two_s, 900_000);
        assert_eq!(
            doc,
            "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n\
             00:00:01.500 --> 00:00:02.500\nacross\n\n\
             00:00:02.000 --> 00:00:03.000\ninside\n\n"
        );
        // The cue across the boundary is in the segment before too.
        assert!(segment(&cues, Duration::ZERO, two_s, 0).contains("across"));
        assert_eq!(pts(Duration::from_secs(10)), 900_000);
        assert_eq!(clock(Duration::from_millis(3_723_004)), "01:02:03.004");
    }

    #[test]
    fn payloads_are_escaped_and_keep_three_tags() {
        assert_eq!(payload("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(
            payload("<I>it</I> <b>bold</b> <font color=red>x</font>"),
            "<i>it</i> <b>bold</b> x"
        );
        assert_eq!(payload("x --> y"), "x --&gt; y");
        assert_eq!(payload("one\n\n  \ntwo\r"), "one\ntwo");
        assert_eq!(payload("{\\an8}top"), "top");
        assert_eq!(payload("<3 you"), "&lt;3 you");
    }
}
