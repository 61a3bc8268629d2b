//! Files the player page loads, built into the binary: hls.js (fetched by build.rs) and web/player.*.

use std::sync::OnceLock;

use crate::config::WebSettings;

use super::caching;

/// hls.js as `npm ci` fetched it at build time; empty when the build had no npm (see build.rs).
static HLSJS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hls.min.js"));
/// The hls.js version web/package-lock.json pins.
pub const HLSJS_VERSION: &str = env!("HLSS_HLSJS_VERSION");
const PLAYER_JS: &str = include_str!("../../web/player.js");
const PLAYER_CSS: &str = include_str!("../../web/player.css");

/// Name of hls.js under `/assets/`.
pub const HLSJS_NAME: &str = "hls.min.js";
pub const PLAYER_JS_NAME: &str = "player.js";
pub const PLAYER_CSS_NAME: &str = "player.css";

/// One file under `/assets/`.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// The asset called `name`, if there is one (hls.js only when the build embedded it).
pub fn find(name: &str) -> Option<Asset> {
    let js = "text/javascript; charset=utf-8";
    match name {
        HLSJS_NAME if hlsjs_embedded() => Some(Asset {
            content_type: js,
            body: HLSJS,
        }),
        PLAYER_JS_NAME => Some(Asset {
            content_type: js,
            body: PLAYER_JS.as_bytes(),
        }),
        PLAYER_CSS_NAME => Some(Asset {
            content_type: "text/css; charset=utf-8",
            body: PLAYER_CSS.as_bytes(),
        }),
        _ => None,
    }
}

pub fn hlsjs_embedded() -> bool {
    !HLSJS.is_empty()
}

/// `/assets/NAME?v=TAG`: the tag changes with the content, so a page never pairs with a stale
/// cached copy even though assets are cached for a day (the query is ignored when serving).
pub fn href(name: &'static str) -> String {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        [HLSJS_NAME, PLAYER_JS_NAME, PLAYER_CSS_NAME]
            .into_iter()
            .filter_map(|n| {
                let asset = find(n)?;
                let tag = caching::etag(asset.body);
                Some((n, tag.trim_matches('"').chars().take(8).collect()))
            })
            .collect()
    });
    match tags.iter().find(|(n, _)| *n == name) {
        Some((_, tag)) => format!("/assets/{name}?v={tag}"),
        None => format!("/assets/{name}"),
    }
}

/// Where player pages load hls.js from: `--hlsjs-url`, else the embedded copy, else the pinned
/// version on a public CDN (a build without npm).
pub fn hlsjs_src(web: &WebSettings) -> String {
    match &web.hlsjs_url {
        Some(url) => url.clone(),
        None if hlsjs_embedded() => href(HLSJS_NAME),
        None => format!("https://cdn.jsdelivr.net/npm/hls.js@{HLSJS_VERSION}/dist/hls.min.js"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_files_are_served_and_versioned() {
        assert!(find(PLAYER_JS_NAME).is_some());
        assert!(find("../Cargo.toml").is_none());
        assert!(href(PLAYER_JS_NAME).starts_with("/assets/player.js?v="));
        let web = WebSettings {
            cors_origin: None,
            hlsjs_url: Some("/x/hls.js".into()),
        };
        assert_eq!(hlsjs_src(&web), "/x/hls.js");
        let default = hlsjs_src(&WebSettings {
            hlsjs_url: None,
            ..web
        });
        if hlsjs_embedded() {
            assert!(default.starts_with("/assets/hls.min.js?v="), "{default}");
            assert!(
                HLSJS.len() > 100_000,
                "hls.min.js is only {} bytes",
                HLSJS.len()
            );
        } else {
            assert!(default.contains(HLSJS_VERSION), "{default}");
        }
    }
}
