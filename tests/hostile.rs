//! End-to-end over raw sockets (no client normalises the path first): hostile request paths never
//! reach outside the media root, names are escaped on pages and encoded in URLs and headers.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{Server, media, media_root};

/// Longest error body accepted as "plain and short".
const SHORT_BODY: usize = 1024;
/// Bound on one raw exchange; error answers are immediate.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// In every file outside the root; no response may ever contain it.
const MARKER: &str = "HLSS-OUTSIDE-MARKER-7f3a";
/// A folder name that would inject a header if it reached one unencoded.
const CRLF_DIR: &str = "evil\r\nX-Injected: yes";
/// A file name that would run script if a page did not escape it.
const SCRIPT_NAME: &str = "<img src=x onerror=alert(1)>.mp4";

/// A raw HTTP/1.1 response.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `target` as-is on the request line, and reads the whole answer.
fn raw_get(server: &Server, target: &[u8]) -> Raw {
    let base = server.url("/");
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut socket = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    socket.set_read_timeout(Some(EXCHANGE_TIMEOUT)).unwrap();
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    socket.write_all(&request).unwrap();
    let mut bytes = Vec::new();
    let _ = socket.read_to_end(&mut bytes);
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "GET {}: no complete response: {:?}",
                String::from_utf8_lossy(target),
                String::from_utf8_lossy(&bytes)
            )
        });
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    Raw {
        status,
        head,
        body: bytes[split + 4..].to_vec(),
    }
}

/// `top/media` is served; `top` also holds real media and a marked text file that must stay out
/// of reach, and the root holds links into and out of itself.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("hostile-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch folder");
    let top = dir.path().canonicalize().unwrap();
    let root = top.join("media");
    let clip = media_root().join(media::MP4.rel);
    for folder in ["media/sub", "outside"] {
        std::fs::create_dir_all(top.join(folder)).unwrap();
    }
    std::fs::create_dir_all(root.join(CRLF_DIR)).unwrap();
    for copy in [
        "media/clip.mp4",
        "media/sub/inner.mp4",
        "secret.mp4",
        "outside/x.mp4",
    ] {
        std::fs::copy(&clip, top.join(copy)).unwrap();
    }
    std::fs::write(root.join(SCRIPT_NAME), b"not media").unwrap();
    for text in ["secret.txt", "outside/secret.txt"] {
        std::fs::write(top.join(text), format!("{MARKER}\n")).unwrap();
    }
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    };
    link("sub", "link_in");
    link("clip.mp4", "link_in_file.mp4");
    link("../outside", "link_out");
    link("../secret.mp4", "link_out_file.mp4");
    link(top.to_str().unwrap(), "link_abs");
    link("/etc", "link_etc");
    (dir, root)
}

/// Request targets that try to leave the root, each written as an attacker would send it.
fn hostile_targets() -> Vec<Vec<u8>> {
    let mut targets: Vec<Vec<u8>> = [
        "/hls/../secret.mp4/index.m3u8",
        "/hls/..%2fsecret.mp4/index.m3u8",
        "/hls/..%2Fsecret.mp4/index.m3u8",
        "/hls/%2e%2e/secret.mp4/index.m3u8",
        "/hls/%2E%2E%2Fsecret.mp4/index.m3u8",
        "/hls/%2e%2e%2fsecret.mp4/0.ts",
        "/hls/.%2e/secret.mp4/index.m3u8",
        "/hls/%252e%252e/secret.mp4/index.m3u8",
        "/hls/%252e%252e%252fsecret.mp4/index.m3u8",
        "/hls/%c0%ae%c0%ae/secret.mp4/index.m3u8",
        "/hls/%c0%ae%c0%ae%c0%afsecret.mp4/index.m3u8",
        "/hls/%e0%80%ae%e0%80%ae/secret.mp4/index.m3u8",
        "/hls/..%5csecret.mp4/index.m3u8",
        "/hls/%2e%2e%5c%2e%2e%5csecret.mp4/index.m3u8",
        "/hls/clip.mp4%00/index.m3u8",
        "/hls/clip.mp4/index.m3u8%00",
        "/hls/%2f%2e%2e%2fsecret.mp4/index.m3u8",
        "/hls//../secret.mp4/index.m3u8",
        "/hls/sub/../../secret.mp4/index.m3u8",
        "/hls/sub/%2e%2e/%2e%2e/secret.mp4/index.m3u8",
        "/hls/link_out/x.mp4/index.m3u8",
        "/hls/link_out_file.mp4/index.m3u8",
        "/hls/link_abs/secret.mp4/index.m3u8",
        "/hls/link_etc/hostname/index.m3u8",
        "/hls/secret.mp4/index.m3u8",
        "/browse/../",
        "/browse/%2e%2e/",
        "/browse/..%2f/",
        "/browse/link_out/",
        "/browse/link_abs/",
        "/browse/link_etc/",
        "/browse/%2e%2e%2foutside/",
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "//etc/passwd",
        "/secret.txt",
        "/outside/secret.txt",
        "http://localhost/../secret.txt",
        "http://localhost/hls/%2e%2e/secret.mp4/index.m3u8",
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .collect();
    // Bytes no client library would send unencoded.
    targets.push(b"/hls/..\\secret.mp4/index.m3u8".to_vec());
    targets.push(b"/hls/\\..\\..\\secret.mp4/index.m3u8".to_vec());
    targets.push(b"/hls/clip.mp4\x00/index.m3u8".to_vec());
    targets.push(b"/hls/\xc0\xae\xc0\xae/secret.mp4/index.m3u8".to_vec());
    targets.push(format!("/hls/{}index.m3u8", "a/".repeat(6000)).into_bytes());
    targets
}

fn check_refused(reply: &Raw, target: &[u8], top: &Path) {
    let shown = String::from_utf8_lossy(target);
    let shown = support::http::truncate(&shown, 120);
    // 404 from the router; 400, 414 or 431 from the HTTP parser for bytes it rejects outright.
    assert!(
        [400, 404, 414, 431].contains(&reply.status),
        "GET {shown}: status {} (head {:?})",
        reply.status,
        reply.head
    );
    let text = reply.text();
    assert!(!text.contains(MARKER), "GET {shown} leaked the marker");
    assert!(
        !text.contains(top.to_str().unwrap()),
        "GET {shown} named a server path: {text:?}"
    );
    assert!(
        reply.body.len() <= SHORT_BODY,
        "GET {shown}: body of {} bytes",
        reply.body.len()
    );
}

#[test]
fn hostile_paths_are_refused_and_say_nothing() {
    let (_dir, root) = tree();
    let top = root.parent().unwrap().to_path_buf();
    let mut server = Server::start(&root, &[]);
    let targets = hostile_targets();
    assert!(targets.len() >= 40);
    for target in &targets {
        let reply = raw_get(&server, target);
        check_refused(&reply, target, &top);
    }
    // What exists outside and what does not get the same answer, byte for byte.
    for (exists, missing) in [
        (
            "/hls/..%2fsecret.mp4/index.m3u8",
            "/hls/..%2fnothing.mp4/index.m3u8",
        ),
        (
            "/hls/link_out/x.mp4/index.m3u8",
            "/hls/link_out/nothing.mp4/index.m3u8",
        ),
        ("/browse/link_out/", "/browse/nothing/"),
    ] {
        let (a, b) = (
            raw_get(&server, exists.as_bytes()),
            raw_get(&server, missing.as_bytes()),
        );
        assert_eq!(
            (a.status, &a.body),
            (b.status, &b.body),
            "{exists} and {missing} are told apart"
        );
    }
    assert!(server.is_running(), "the server exited");
}

#[test]
fn symlinks_inside_the_root_play() {
    let (_dir, root) = tree();
    let server = Server::start(&root, &[]);
    for target in [
        "/hls/link_in/inner.mp4/index.m3u8",
        "/hls/link_in_file.mp4/index.m3u8",
        "/hls/sub%2Finner.mp4/index.m3u8",
    ] {
        let reply = raw_get(&server, target.as_bytes());
        assert_eq!(reply.status, 200, "GET {target}: {:?}", reply.text());
        assert!(reply.text().starts_with("#EXTM3U"), "GET {target}");
    }
    let listing = raw_get(&server, b"/browse/link_in/");
    assert_eq!(listing.status, 200);
    assert!(listing.text().contains("inner.mp4"));
}

#[test]
fn names_are_escaped_in_pages_and_encoded_in_headers() {
    let (_dir, root) = tree();
    let server = Server::start(&root, &[]);
    let page = raw_get(&server, b"/");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(!html.contains("<img src=x"), "unescaped name in {html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;.mp4"),
        "{html}"
    );
    assert!(!html.contains(MARKER));
    for href in support::listing::hrefs(&html) {
        support::listing::check_href_encoded(&href)
            .unwrap_or_else(|e| panic!("href {href:?}: {e}"));
    }
    // The folder without its slash redirects; the name must reach the header encoded.
    let redirect = raw_get(&server, b"/browse/evil%0D%0AX-Injected:%20yes");
    assert_eq!(redirect.status, 301, "{:?}", redirect.head);
    assert!(
        !redirect
            .head
            .to_ascii_lowercase()
            .contains("\r\nx-injected"),
        "header injected: {:?}",
        redirect.head
    );
    assert!(
        redirect
            .head
            .contains("location: /browse/evil%0D%0AX-Injected%3A%20yes/")
            || redirect
                .head
                .contains("Location: /browse/evil%0D%0AX-Injected%3A%20yes/"),
        "{:?}",
        redirect.head
    );
    // An error about a hostile name is plain text, one short line, without the name's markup.
    let error = raw_get(&server, b"/hls/%3Cscript%3E/index.m3u8");
    assert_eq!(error.status, 404);
    assert!(
        error
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain")
    );
    assert!(!error.text().contains('<'), "{:?}", error.text());
    assert_eq!(error.text().lines().count(), 1);
}
