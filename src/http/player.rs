//! The player page of one file (`/watch/<file>`): a `<video>` with hls.js or native HLS, and its CSP.

use crate::library::RelPath;

use super::pages::escape;
use super::{assets, urls};

/// Content-Security-Policy of the player page. Scripts come from this server (or the configured
/// hls.js URL); hls.js plays through a `blob:` MediaSource and runs its transmuxer in a `blob:`
/// worker; nothing is framed, posted or loaded from elsewhere.
pub fn content_security_policy(hlsjs_src: &str) -> String {
    let mut script = "'self'".to_owned();
    if hlsjs_src.starts_with("http://") || hlsjs_src.starts_with("https://") {
        // Config validation keeps spaces, `;` and `,` out of the URL; a source expression has
        // no query or fragment.
        let end = hlsjs_src.find(['?', '#']).unwrap_or(hlsjs_src.len());
        script.push(' ');
        script.push_str(&hlsjs_src[..end]);
    }
    format!(
        "default-src 'none'; script-src {script}; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; \
         base-uri 'none'; form-action 'none'"
    )
}

/// A JSON string literal that is also safe inside `<script>`: `<`, `>` and `&` are escaped too.
pub(super) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Line and paragraph separators end a line in older JavaScript parsers.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The page for file `rel`; `title` names the library, as listings do. A page opened by a signed
/// `link` plays by that link; `share` offers a "copy link" button (for a viewer who may make
/// links: not a link holder).
pub fn page(
    title: &str,
    rel: &RelPath,
    hlsjs_src: &str,
    link: Option<&str>,
    share: bool,
) -> String {
    let name = escape(rel.name());
    let parent = rel.parent().unwrap_or_default();
    let folder_name = if parent.is_root() {
        escape(title)
    } else {
        escape(parent.name())
    };
    let carried = urls::Carried {
        session: None,
        link,
    };
    let playlist = format!("{}{}", urls::playlist(rel), carried.query());
    let share_url = if share {
        json_string(&urls::share(rel))
    } else {
        "null".to_owned()
    };
    let data = format!(
        "{{\"playlist\":{},\"name\":{},\"share\":{share_url}}}",
        json_string(&playlist),
        json_string(rel.name())
    );
    let playlist = escape(&playlist);
    // Someone who came by a link sees this file only: no way back into the library.
    let nav = if link.is_some() {
        String::new()
    } else {
        format!(
            "<nav><a href=\"{}\" id=\"back\">&#8592; Back to {folder_name}</a></nav>\n",
            urls::folder(&parent)
        )
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{name} - hlss</title><link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"{css}\"></head><body>\n\
         {nav}\
         <main>\n<h1 id=\"name\">{name}</h1>\n\
         <video id=\"video\" controls playsinline preload=\"auto\" tabindex=\"0\" \
         aria-label=\"{name}\"></video>\n\
         <p id=\"status\" role=\"status\" aria-live=\"polite\">Loading&#8230;</p>\n\
         <p class=\"tracks\"><label hidden>Audio <select id=\"audio-track\"></select></label> \
         <label hidden>Subtitles <select id=\"subtitle-track\"></select></label></p>\n\
         <dl><dt>Duration</dt><dd id=\"duration\">unknown until the playlist loads</dd>\
         <dt>Playlist</dt><dd><a href=\"{playlist}\" id=\"playlist\">index.m3u8</a> \
         (for VLC, mpv, ffplay or Safari)</dd></dl>\n\
         <div class=\"share\" hidden><p><button type=\"button\" id=\"share\">Copy a link</button> \
         valid for <select id=\"share-expires\"><option value=\"1h\">1 hour</option>\
         <option value=\"24h\" selected>1 day</option><option value=\"7days\">7 days</option>\
         </select> that plays this file, and nothing else, without a login</p>\
         <p id=\"shared\" hidden><label>In a browser <input id=\"share-page\" readonly></label>\
         <label>In VLC, a TV or ffplay <input id=\"share-url\" readonly></label></p></div>\n\
         <p class=\"keys\">Keys: <kbd>Space</kbd> or <kbd>K</kbd> play/pause, \
         <kbd>&#8592;</kbd> <kbd>&#8594;</kbd> 5 s back/forward, <kbd>J</kbd> <kbd>L</kbd> 10 s, \
         <kbd>0</kbd>&#8230;<kbd>9</kbd> jump to 0&#8230;90&#160;%, <kbd>M</kbd> mute, \
         <kbd>F</kbd> full screen.</p>\n\
         <noscript><p class=\"error\">This page needs JavaScript to play the file. Open the \
         playlist link above in a player instead.</p></noscript>\n</main>\n\
         <script type=\"application/json\" id=\"hlss-data\">{data}</script>\n\
         <script src=\"{hlsjs}\" id=\"hlsjs\"></script>\n\
         <script src=\"{js}\"></script>\n</body></html>\n",
        css = assets::href(assets::PLAYER_CSS_NAME),
        hlsjs = escape(hlsjs_src),
        js = assets::href(assets::PLAYER_JS_NAME),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_safe_inside_script() {
        assert_eq!(
            json_string("</script><b>&\"\\\n\u{2028}"),
            "\"\\u003c/script\\u003e\\u003cb\\u003e\\u0026\\\"\\\\\\u000a\\u2028\""
        );
    }

    #[test]
    fn page_escapes_the_name_and_links_back() {
        let rel = RelPath::parse("Sub Dir & ü/it's <a> \"clip\".mp4").unwrap();
        let html = page("Videos", &rel, "/assets/hls.min.js?v=1", None, true);
        assert!(html.contains("<h1 id=\"name\">it&#39;s &lt;a&gt; &quot;clip&quot;.mp4</h1>"));
        assert!(html.contains("href=\"/browse/Sub%20Dir%20%26%20%C3%BC/\""));
        assert!(html.contains("Back to Sub Dir &amp; ü"));
        assert!(!html.contains("<a>"));
        // The only script content is the JSON data, with no raw `<` from the name.
        let data = html
            .split("id=\"hlss-data\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        assert!(!data.contains(['<', '>', '&']), "{data}");
        assert!(data.contains("\"name\":\"it's \\u003ca\\u003e \\\"clip\\\".mp4\""));
        let top = page(
            "Videos",
            &RelPath::parse("a.mp4").unwrap(),
            "/h.js",
            None,
            false,
        );
        assert!(top.contains("\"share\":null"));
        let linked = page(
            "V",
            &RelPath::parse("a.mp4").unwrap(),
            "/h.js",
            Some("9-ab"),
            false,
        );
        assert!(linked.contains("\"playlist\":\"/hls/a.mp4/index.m3u8?t=9-ab\""));
        assert!(linked.contains("href=\"/hls/a.mp4/index.m3u8?t=9-ab\""));
        assert!(!linked.contains("id=\"back\""));
        assert!(top.contains("<a href=\"/\" id=\"back\">&#8592; Back to Videos</a>"));
    }

    #[test]
    fn csp_admits_an_external_hlsjs() {
        let own = content_security_policy("/assets/hls.min.js?v=1");
        assert!(own.contains("script-src 'self';"), "{own}");
        let cdn = content_security_policy("https://cdn.example/hls.min.js?v=2#x");
        assert!(cdn.contains("script-src 'self' https://cdn.example/hls.min.js;"));
    }
}
