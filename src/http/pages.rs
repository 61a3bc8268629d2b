//! HTML pages: the folder listings people browse (plain HTML, no JavaScript).

use std::fmt::Write;

use crate::library::tracks::Languages;
use crate::library::{Entry, EntryKind, RelPath};

use super::urls;

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sizes as people read them: 1.5 GiB, 700 MiB, 12 KiB.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.3rem;word-break:break-all}table{border-collapse:collapse;width:100%}\
td{padding:.35rem .5rem;border-bottom:1px solid #eee}td.size{text-align:right;color:#666;white-space:nowrap}\
a{text-decoration:none}a:hover{text-decoration:underline}.empty{color:#666}\
a.m3u8{font-size:.8rem;color:#666;margin-left:.6rem}.langs{font-size:.8rem;color:#666;margin-left:.6rem}\
form.who{float:right;color:#666;font-size:.9rem}";

/// A file's languages in a listing: `audio en, fr · subtitles en, de`.
fn languages_html(languages: &Languages) -> String {
    let mut parts = Vec::new();
    // One audio language alone is the usual case and says little; several are worth a look.
    if languages.audio.len() > 1 {
        parts.push(format!("audio {}", languages.audio.join(", ")));
    }
    if !languages.subtitles.is_empty() {
        parts.push(format!("subtitles {}", languages.subtitles.join(", ")));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!(
        " <span class=\"langs\">{}</span>",
        escape(&parts.join(" \u{b7} "))
    )
}

/// The listing of folder `rel` within the library described by `title`.
pub fn folder(
    title: &str,
    rel: &RelPath,
    entries: &[Entry],
    languages: &[Option<Languages>],
    user: Option<&str>,
) -> String {
    let heading = if rel.is_root() {
        escape(title)
    } else {
        format!("{} / {}", escape(title), escape(&rel.to_string()))
    };
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>hlss: {heading}</title><style>{STYLE}</style></head><body>\n"
    );
    if let Some(user) = user {
        let _ = writeln!(
            html,
            "<form class=\"who\" method=\"post\" action=\"/logout\">{} \
             <button type=\"submit\" id=\"logout\">Log out</button></form>",
            escape(user)
        );
    }
    let _ = write!(html, "<h1>{heading}</h1>\n<table>\n");
    if let Some(parent) = rel.parent() {
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{}\">&#8593; Parent folder</a></td><td></td></tr>",
            urls::folder(&parent)
        );
    }
    for (i, entry) in entries.iter().enumerate() {
        let child = rel.join(&entry.name);
        let langs = languages
            .get(i)
            .and_then(Option::as_ref)
            .map(languages_html)
            .unwrap_or_default();
        let name = escape(&entry.name);
        let _ = match entry.kind {
            EntryKind::Folder => writeln!(
                html,
                "<tr><td>&#128193; <a href=\"{}\">{name}/</a></td><td class=\"size\"></td></tr>",
                urls::folder(&child)
            ),
            // The name opens the player page; the playlist link beside it is for other players.
            EntryKind::Media { size } => writeln!(
                html,
                "<tr><td>&#127902; <a href=\"{}\">{name}</a> <a class=\"m3u8\" href=\"{}\" \
                 title=\"HLS playlist of {name}\">playlist</a>{langs}</td><td class=\"size\">{}</td></tr>",
                urls::watch(&child),
                urls::playlist(&child),
                size.map(human_size).unwrap_or_default()
            ),
        };
    }
    html.push_str("</table>\n");
    if entries.is_empty() {
        html.push_str("<p class=\"empty\">No media files here.</p>\n");
    }
    html.push_str(
        "<p class=\"empty\">Click a file to play it here. Its <em>playlist</em> link is the HLS \
         stream itself: open it in Safari, or copy it into VLC, mpv or ffplay.</p>\n</body></html>\n",
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names_and_encodes_links() {
        let entries = [
            Entry {
                name: "a & b".into(),
                kind: EntryKind::Folder,
            },
            Entry {
                name: "it's <a> \"clip\".mp4".into(),
                kind: EntryKind::Media { size: Some(1536) },
            },
        ];
        let languages = [
            None,
            Some(Languages {
                audio: vec!["en".into(), "fr".into()],
                subtitles: vec!["de".into()],
            }),
        ];
        let html = folder(
            "Videos",
            &RelPath::parse("sub").unwrap(),
            &entries,
            &languages,
            Some("<ann>"),
        );
        assert!(
            html.contains("&lt;ann&gt; <button type=\"submit\" id=\"logout\">Log out</button>")
        );
        assert!(html.contains("<span class=\"langs\">audio en, fr \u{b7} subtitles de</span>"));
        assert!(html.contains("it&#39;s &lt;a&gt; &quot;clip&quot;.mp4"));
        assert!(!html.contains("<a>"));
        assert!(html.contains("href=\"/hls/sub/it%27s%20%3Ca%3E%20%22clip%22.mp4/index.m3u8\""));
        assert!(html.contains("href=\"/watch/sub/it%27s%20%3Ca%3E%20%22clip%22.mp4\""));
        assert!(html.contains("href=\"/browse/sub/a%20%26%20b/\""));
        assert!(html.contains("href=\"/\">&#8593; Parent folder"));
        assert!(html.contains("1.5 KiB"));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
