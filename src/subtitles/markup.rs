//! Subtitle text as GStreamer's text caps carry it (Pango markup or plain UTF-8) turned into WebVTT cue payloads.

/// How far a tag's `>` or an entity's `;` is looked for: markup is short, and a stray `<` or `&`
/// must not make this quadratic.
const TAG_SPAN: usize = 256;
const ENTITY_SPAN: usize = 12;

/// Pango markup (`text/x-raw, format=pango-markup`) as a cue payload: entities decoded (the five
/// XML ones and numeric references), `<i>`, `<b>`, `<u>` and their ends kept, every other tag
/// (`<span …>`, `<s>`, `<tt>`, SubRip's `<font …>`) dropped, then escaped for WebVTT.
///
/// Lenient, because the markup is not always well formed: matroskademux (1.22) escapes a SubRip
/// track's text only until it meets a tag in it, and from then on passes `&` and `<` through as
/// they are. So a `&` that starts no known entity and a `<` that starts no tag (`1 < 2`, `<3`)
/// are text. SubRip's `{\an8}` override blocks, which that same path lets through, are dropped.
pub fn from_pango(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len());
    let mut rest = markup;
    while let Some(c) = rest.chars().next() {
        let taken = match c {
            '<' => tag(rest).map(|(kept, len)| {
                out.push_str(kept.unwrap_or_default());
                len
            }),
            '&' => entity(rest).map(|(decoded, len)| {
                escape_into(&mut out, decoded);
                len
            }),
            '{' if rest.starts_with("{\\") => within(rest, b'}', TAG_SPAN).map(|end| end + 1),
            _ => None,
        };
        let len = taken.unwrap_or_else(|| {
            escape_into(&mut out, c);
            c.len_utf8()
        });
        rest = &rest[len..];
    }
    tidy(&out)
}

/// Plain text (`text/x-raw, format=utf8`, as qtdemux gives MP4 timed text) as a cue payload:
/// everything escaped, nothing read as markup.
pub fn from_plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        escape_into(&mut out, c);
    }
    tidy(&out)
}

/// The kept form of the tag at the start of `s` (which starts with `<`) and its length, if it
/// is a tag: `<`, an optional `/`, a letter, then anything but `<` up to `>` (attributes).
/// `Some((None, len))` for a tag that is dropped.
fn tag(s: &str) -> Option<(Option<&'static str>, usize)> {
    let end = within(s, b'>', TAG_SPAN)?;
    let inner = &s[1..end];
    let (closing, body) = match inner.strip_prefix('/') {
        Some(body) => (true, body),
        None => (false, inner),
    };
    if !body.starts_with(|c: char| c.is_ascii_alphabetic()) || inner.contains('<') {
        return None;
    }
    let name_len = body
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(body.len());
    let kept = match (body[..name_len].to_ascii_lowercase().as_str(), closing) {
        ("i", false) => Some("<i>"),
        ("i", true) => Some("</i>"),
        ("b", false) => Some("<b>"),
        ("b", true) => Some("</b>"),
        ("u", false) => Some("<u>"),
        ("u", true) => Some("</u>"),
        _ => None,
    };
    Some((kept, end + 1))
}

/// The character the entity at the start of `s` (which starts with `&`) stands for and its
/// length, if it is one: `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#…;` or `&#x…;`.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = within(s, b';', ENTITY_SPAN)?;
    let name = &s[1..end];
    let decoded = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code).filter(|&c| c != '\0')?
        }
    };
    Some((decoded, end + 1))
}

/// Where `byte` first is in the first `span` bytes of `s`.
fn within(s: &str, byte: u8, span: usize) -> Option<usize> {
    s.bytes().take(span).position(|b| b == byte)
}

/// Appends `c` to a WebVTT payload: `&`, `<` and `>` escaped, NUL dropped.
fn escape_into(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '\0' => {}
        c => out.push(c),
    }
}

/// Lines split at `\n`, `\r\n` or `\r`, trailing spaces trimmed, blank lines removed (a blank
/// line would end the cue).
fn tidy(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pango_entities_are_decoded_and_escaped_again() {
        assert_eq!(
            from_pango("Tom &amp; Jerry &lt;3 &quot;hi&quot; it&apos;s &gt;"),
            "Tom &amp; Jerry &lt;3 \"hi\" it's &gt;"
        );
        assert_eq!(from_pango("&#233;t&#xE9; &#X41;"), "été A");
        // Not entities: left as text (and escaped).
        assert_eq!(
            from_pango("a & b &nbsp; &#0; &#xZZ; &"),
            "a &amp; b &amp;nbsp; &amp;#0; &amp;#xZZ; &amp;"
        );
    }

    #[test]
    fn three_tags_are_kept_and_the_others_dropped() {
        assert_eq!(
            from_pango("<i>it</i> <B>bold</B> <u>under</u>"),
            "<i>it</i> <b>bold</b> <u>under</u>"
        );
        assert_eq!(
            from_pango(
                "<span foreground=\"red\" font_style=\"italic\">red</span> <s>x</s> <tt>y</tt>"
            ),
            "red x y"
        );
        assert_eq!(
            from_pango("<font color=\"#ff0000\">SubRip</font>"),
            "SubRip"
        );
        assert_eq!(from_pango("{\\an8}top"), "top");
    }

    #[test]
    fn pango_as_matroskademux_leaves_it_after_a_tag() {
        // Raw SubRip text after the first tag: `&` and `<` not escaped.
        assert_eq!(
            from_pango("Hello <i>world</i> & co"),
            "Hello <i>world</i> &amp; co"
        );
        assert_eq!(
            from_pango("1 < 2 and \"quotes\"\r\nsecond line"),
            "1 &lt; 2 and \"quotes\"\nsecond line"
        );
        assert_eq!(from_pango("<3 you"), "&lt;3 you");
        assert_eq!(from_pango("a <b"), "a &lt;b");
        assert_eq!(from_pango("x > y"), "x &gt; y");
    }

    #[test]
    fn line_endings_and_blank_lines() {
        assert_eq!(from_pango("one \r\n\r\n  \rtwo\n"), "one\ntwo");
        assert_eq!(from_plain("a\r\nb\rc\n\nd\0"), "a\nb\nc\nd");
        assert_eq!(from_pango(""), "");
    }

    #[test]
    fn plain_text_is_all_text() {
        assert_eq!(
            from_plain("<i>not a tag</i> & x --> y"),
            "&lt;i&gt;not a tag&lt;/i&gt; &amp; x --&gt; y"
        );
    }

    #[test]
    fn a_long_run_of_strays_is_escaped_whole() {
        // Tags are looked for a bounded way ahead, so this stays linear (benchmarks, not a
        // timed test, would show otherwise); every stray comes out escaped.
        let strays = "<&{\\".repeat(20_000);
        let out = from_pango(&strays);
        assert!(out.starts_with("&lt;&amp;{\\&lt;"));
        assert_eq!(out.matches("&lt;").count(), 20_000);
    }
}
