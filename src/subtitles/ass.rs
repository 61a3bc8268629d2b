//! ASS/SSA (`.ass`, `.ssa`): the `Dialogue:` lines of the `[Events]` section, read as text (styles and positions dropped; italic, bold and underline kept).

use super::{Cue, SubtitleError, timestamp, webvtt::payload};

/// The Events fields when a file has no `Format:` line (ASS's order).
const DEFAULT_FORMAT: [&str; 10] = [
    "layer", "start", "end", "style", "name", "marginl", "marginr", "marginv", "effect", "text",
];

pub fn parse(text: &str) -> Result<Vec<Cue>, SubtitleError> {
    let mut in_events = false;
    let mut format: Vec<String> = DEFAULT_FORMAT.iter().map(|s| s.to_string()).collect();
    let mut cues = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            in_events = line.eq_ignore_ascii_case("[events]");
            continue;
        }
        if !in_events {
            continue;
        }
        if let Some(fields) = line.strip_prefix("Format:") {
            format = fields
                .split(',')
                .map(|f| f.trim().to_ascii_lowercase())
                .collect();
            continue;
        }
        let Some(values) = line.strip_prefix("Dialogue:") else {
            continue;
        };
        // The text is the last field and may itself hold commas.
        let values: Vec<&str> = values.splitn(format.len(), ',').collect();
        let field = |name: &str| {
            let at = format.iter().position(|f| f == name)?;
            values.get(at).map(|v| v.trim())
        };
        let malformed = |what| SubtitleError::Malformed {
            line: number + 1,
            what,
        };
        let start = field("start")
            .and_then(timestamp)
            .ok_or(malformed("bad Start"))?;
        let end = field("end")
            .and_then(timestamp)
            .ok_or(malformed("bad End"))?;
        let raw = field("text").ok_or(malformed("no Text"))?;
        cues.push(Cue {
            start,
            end,
            text: payload(&plain(raw)),
        });
    }
    Ok(cues)
}

/// The cue payload of an ASS/SSA event as Matroska stores it (and GStreamer's
/// `application/x-ass` / `application/x-ssa` carry it): `ReadOrder, Layer, Style, Name, MarginL,
/// MarginR, MarginV, Effect, Text`, the times being the block's. Empty when it has no Text field.
pub fn from_event(event: &str) -> String {
    const FIELDS_BEFORE_TEXT: usize = 8;
    event
        .splitn(FIELDS_BEFORE_TEXT + 1, ',')
        .nth(FIELDS_BEFORE_TEXT)
        .map(|raw| payload(&plain(raw.trim_end_matches(['\0', '\r', '\n']))))
        .unwrap_or_default()
}

/// ASS text to plain text with `<i>`, `<b>`, `<u>`: override blocks (`{\…}`) dropped but for
/// those three switches, `\N`/`\n` as line breaks, `\h` as a no-break space.
fn plain(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            rest = &rest[open..];
            break;
        };
        let block = &rest[open + 1..open + close];
        for tag in block.split('\\').filter(|t| !t.is_empty()) {
            match tag.trim() {
                "i1" => out.push_str("<i>"),
                "i0" => out.push_str("</i>"),
                "b1" => out.push_str("<b>"),
                "b0" => out.push_str("</b>"),
                "u1" => out.push_str("<u>"),
                "u0" => out.push_str("</u>"),
                _ => {}
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("\\N", "\n")
        .replace("\\n", "\n")
        .replace("\\h", "\u{a0}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dialogue_lines_of_the_events_section() {
        let ass = "[Script Info]\nTitle: x\nDialogue: 0,0:00:09.00,0:00:10.00,Default,,0,0,0,,not an event\n\n\
                   [Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
                   Comment: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,hidden\n\
                   Dialogue: 0,0:00:01.00,0:00:03.50,Default,,0,0,0,,{\\pos(10,10)\\i1}Bonjour{\\i0}, le monde\\Nligne deux\n";
        let cues = parse(ass).unwrap();
        assert_eq!(cues.len(), 1);
        assert_eq!(cues[0].start, Duration::from_secs(1));
        assert_eq!(cues[0].end, Duration::from_millis(3500));
        assert_eq!(cues[0].text, "<i>Bonjour</i>, le monde\nligne deux");
    }

    #[test]
    fn matroska_events() {
        assert_eq!(
            from_event("3,0,Default,,0,0,0,,{\\i1}Slanted{\\i0} & plain\\Nline, two"),
            "<i>Slanted</i> &amp; plain\nline, two"
        );
        assert_eq!(from_event("0,0,Default,Bob,0,0,0,,"), "");
        assert_eq!(from_event("not an event"), "");
    }
}
