//! Reading the server's HTML listings by plain string scanning, and crawling them for playlist links.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Server;
use super::http;

/// Bound on pages visited by a crawl, so that a link cycle cannot keep a test busy.
const MAX_PAGES: usize = 50;

/// Every `href="..."` value in document order, with HTML character references resolved.
pub fn hrefs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("href=\"") {
        rest = &rest[start + "href=\"".len()..];
        let Some(end) = rest.find('"') else { break };
        out.push(unescape_html(&rest[..end]));
        rest = &rest[end + 1..];
    }
    out
}

/// Resolves `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and numeric references; leaves others alone.
pub fn unescape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes `%XX` escapes into UTF-8 text.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

/// Checks that an href is a valid URI reference as far as our names go: ASCII, nothing to escape left.
pub fn check_href_encoded(href: &str) -> Result<(), String> {
    match href
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || " \"<>\\^`{|}".contains(*c))
    {
        Some(c) => Err(format!(
            "href {href:?} contains {c:?}, which must be percent-encoded"
        )),
        None => Ok(()),
    }
}

/// Resolves an href found on the page at `page` (an absolute path ending in `/`) to an absolute path.
pub fn resolve(page: &str, href: &str) -> String {
    if href.starts_with('/') {
        return href.to_owned();
    }
    let mut parts: Vec<&str> = page.split('/').filter(|p| !p.is_empty()).collect();
    let trailing_slash = href.is_empty() || href.ends_with('/') || href.ends_with("..");
    for part in href.split('/').filter(|p| !p.is_empty()) {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    let mut out = String::from("/");
    out.push_str(&parts.join("/"));
    if trailing_slash && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The media file's path relative to the served folder, if `href` is a playlist link.
pub fn playlist_rel(href: &str) -> Option<String> {
    let encoded = href.strip_prefix("/hls/")?.strip_suffix("/index.m3u8")?;
    percent_decode(encoded).ok()
}

/// The folder's path relative to the served folder, if `href` is a sub-listing link.
pub fn browse_rel(href: &str) -> Option<String> {
    let encoded = href.strip_prefix("/browse/")?.strip_suffix('/')?;
    percent_decode(encoded).ok()
}

/// One listing page.
#[derive(Debug)]
pub struct Page {
    pub path: String,
    pub html: String,
    /// Hrefs resolved to absolute paths, in document order.
    pub links: Vec<String>,
}

/// Fetches a listing page and checks the parts every listing shares.
pub fn fetch_page(server: &Server, path: &str) -> Page {
    let url = server.url(path);
    let reply = http::get_ok(&url, "text/html").unwrap_or_else(|e| panic!("listing {path}: {e}"));
    let html = reply
        .utf8()
        .unwrap_or_else(|e| panic!("listing {path}: {e}"))
        .to_owned();
    let raw = hrefs(&html);
    for href in &raw {
        check_href_encoded(href).unwrap_or_else(|e| panic!("listing {path}: {e}"));
    }
    let links = raw.iter().map(|href| resolve(path, href)).collect();
    Page {
        path: path.to_owned(),
        html,
        links,
    }
}

/// What a crawl from `/` found.
#[derive(Debug, Default)]
pub struct Crawl {
    /// Playlist href by the file's decoded relative path.
    pub playlists: BTreeMap<String, String>,
    /// Every listing page visited, by path.
    pub pages: BTreeMap<String, Page>,
}

impl Crawl {
    /// The playlist href of the file at `rel`, panicking with what was found otherwise.
    pub fn playlist(&self, rel: &str) -> &str {
        self.playlists.get(rel).unwrap_or_else(|| {
            panic!(
                "no playlist link for {rel:?}; the crawl found {:?}",
                self.playlists.keys().collect::<Vec<_>>()
            )
        })
    }
}

/// Follows folder links from `/` and collects every playlist link.
pub fn crawl(server: &Server) -> Crawl {
    let mut crawl = Crawl::default();
    let mut seen = BTreeSet::from(["/".to_owned()]);
    let mut queue = VecDeque::from(["/".to_owned()]);
    while let Some(path) = queue.pop_front() {
        assert!(
            crawl.pages.len() < MAX_PAGES,
            "crawl visited {MAX_PAGES} pages, is there a link cycle? {seen:?}"
        );
        let page = fetch_page(server, &path);
        for link in &page.links {
            if let Some(rel) = playlist_rel(link) {
                crawl.playlists.insert(rel, link.clone());
            } else if link.starts_with("/browse/") && seen.insert(link.clone()) {
                queue.push_back(link.clone());
            }
        }
        crawl.pages.insert(path, page);
    }
    crawl
}

/// The visible text (tags removed, references resolved) of an HTML fragment.
pub fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape_html(&out)
}
