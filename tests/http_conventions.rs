//! End-to-end: content types, HEAD, CORS, Cache-Control, ETag/304 and ranges, and nginx's proxy_cache in front.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Server, media, media_root};
use ureq::Agent;

/// The wait for nginx to accept connections.
const NGINX_START: Duration = Duration::from_secs(10);

/// A response with the headers the test looks at.
struct Got {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn agent() -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .proxy(None)
        .max_redirects(0)
        .build()
        .into()
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(()).expect("a valid request");
    let mut response = agent()
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    };
    Got {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    request("GET", url, headers)
}

#[test]
fn every_response_follows_the_conventions() {
    let server = Server::start(media_root(), &["--preset", "ultrafast"]);
    let file = media::MP4.rel;
    let playlist_url = server.url(&format!("/hls/{file}/index.m3u8"));

    // Content types, and HEAD answers like GET without a body.
    for (path, mime) in [
        ("/".to_owned(), "text/html"),
        (format!("/watch/{file}"), "text/html"),
        (
            format!("/hls/{file}/index.m3u8"),
            "application/vnd.apple.mpegurl",
        ),
        (format!("/hls/{file}/0.ts"), "video/mp2t"),
        ("/assets/player.js".to_owned(), "text/javascript"),
        ("/assets/player.css".to_owned(), "text/css"),
        ("/healthz".to_owned(), "text/plain"),
    ] {
        let url = server.url(&path);
        let full = get(&url, &[]);
        assert_eq!(full.status, 200, "GET {path}");
        assert!(full.header("content-type").starts_with(mime), "GET {path}");
        let head = request("HEAD", &url, &[]);
        assert_eq!(head.status, 200, "HEAD {path}");
        assert_eq!(head.header("content-type"), full.header("content-type"));
        assert_eq!(
            head.header("content-length"),
            full.body.len().to_string(),
            "HEAD {path} announces the GET's length"
        );
    }

    // Playlists and segments: long caching, CORS, validators.
    let playlist = get(&playlist_url, &[]);
    assert_eq!(playlist.header("cache-control"), "public, max-age=86400");
    assert_eq!(playlist.header("access-control-allow-origin"), "*");
    let segment_url = server.url(&format!("/hls/{file}/1.ts"));
    let segment = get(&segment_url, &[]);
    assert_eq!(segment.header("cache-control"), "public, max-age=86400");
    assert_eq!(segment.header("access-control-allow-origin"), "*");
    assert_eq!(segment.header("accept-ranges"), "bytes");
    let etag = segment.header("etag").to_owned();
    assert!(etag.starts_with('"'), "segment ETag {etag:?}");

    // The ETag does not depend on the query (a viewer session in the playlist's URIs).
    let media = get(&server.url(&format!("/hls/{file}/video.m3u8")), &[]);
    assert_eq!(media.header("cache-control"), "public, max-age=86400");
    let session_uri = String::from_utf8_lossy(&media.body)
        .lines()
        .find(|l| l.starts_with("1.ts"))
        .map(str::to_owned)
        .expect("segment 1 in the playlist");
    let with_query = get(
        &server.url(&format!("/hls/{file}/{session_uri}")),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(with_query.status, 304, "{session_uri} with the ETag");
    assert!(with_query.body.is_empty());
    assert_eq!(with_query.header("etag"), etag);

    let part = get(&segment_url, &[("Range", "bytes=188-375")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.body, segment.body[188..376]);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 188-375/{}", segment.body.len())
    );
    let past = get(&segment_url, &[("Range", "bytes=999999999-")]);
    assert_eq!(past.status, 416);

    // A preflight for a ranged cross-origin request.
    let preflight = request(
        "OPTIONS",
        &segment_url,
        &[
            ("Origin", "http://dashboard.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), "*");
    assert!(
        preflight
            .header("access-control-allow-headers")
            .contains("range")
    );

    // Pages are revalidated, not shared with other origins.
    let listing = get(&server.url("/"), &[]);
    assert_eq!(listing.header("cache-control"), "no-cache");
    assert_eq!(listing.header("access-control-allow-origin"), "");
    let again = get(
        &server.url("/"),
        &[("If-None-Match", listing.header("etag"))],
    );
    assert_eq!(again.status, 304);
    let watch = get(&server.url(&format!("/watch/{file}")), &[]);
    assert!(
        watch
            .header("content-security-policy")
            .contains("default-src 'none'")
    );
    let missing = get(&server.url("/watch/no-such-file.mp4"), &[]);
    assert_eq!(missing.status, 404);
    // Errors of media routes carry CORS too, so a player elsewhere can read the status.
    let gone = get(&server.url("/hls/no-such-file.mp4/index.m3u8"), &[]);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.header("access-control-allow-origin"), "*");
    assert_eq!(gone.header("cache-control"), "no-store");
}

#[test]
fn cors_origin_is_configurable() {
    let server = Server::start(
        media_root(),
        &[
            "--preset",
            "ultrafast",
            "--cors-origin",
            "https://tv.example",
        ],
    );
    let playlist = get(
        &server.url(&format!("/hls/{}/index.m3u8", media::MP4.rel)),
        &[],
    );
    assert_eq!(
        playlist.header("access-control-allow-origin"),
        "https://tv.example"
    );
    let off = Server::start(media_root(), &["--cors-origin", "none"]);
    let asset = get(&off.url("/assets/player.js"), &[]);
    assert_eq!(asset.header("access-control-allow-origin"), "");
}

/// nginx as a plain caching reverse proxy, configured with no cache times of its own: it must
/// cache segments and VOD playlists by hlss's headers alone.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: &str) -> Nginx {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("nginx not found: install nginx-light (`make test` does)");
        let dir = tempfile::tempdir().expect("nginx folder");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off; master_process off; error_log {d}/error.log; pid {d}/nginx.pid;\n\
             events {{}}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
               proxy_cache_path {d}/cache keys_zone=hlss:10m;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass {upstream};\n\
                   proxy_cache hlss;\n\
                   add_header X-Cache-Status $upstream_cache_status always;\n\
                 }}\n\
               }}\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let mut child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let deadline = Instant::now() + NGINX_START;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!("nginx exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nginx_proxy_cache_serves_repeats_from_its_cache() {
    let server = Server::start(media_root(), &["--preset", "ultrafast"]);
    let nginx = Nginx::start(server.url("/").trim_end_matches('/'));
    let file = media::MP4.rel;
    for path in [
        format!("/hls/{file}/index.m3u8"),
        format!("/hls/{file}/0.ts"),
        format!("/hls/{file}/2.ts"),
    ] {
        let first = get(&nginx.url(&path), &[]);
        assert_eq!(first.status, 200, "{path}");
        assert_eq!(first.header("x-cache-status"), "MISS", "{path}");
        for _ in 0..2 {
            let repeat = get(&nginx.url(&path), &[]);
            assert_eq!(repeat.status, 200, "{path}");
            assert_eq!(repeat.header("x-cache-status"), "HIT", "{path} again");
            assert_eq!(repeat.body, first.body, "{path} from the cache");
        }
    }
    let ranged = get(
        &nginx.url(&format!("/hls/{file}/0.ts")),
        &[("Range", "bytes=0-187")],
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("x-cache-status"), "HIT");
}
