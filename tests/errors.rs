//! End-to-end: the server's answers to missing files, non-media files, hostile paths and a taken port.

mod support;

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use support::{Kind, Server, check_stream, http, listing, media, media_root, server, tools};

/// Longest body accepted as "a short text" for an error.
const SHORT_BODY: usize = 1024;

/// Bound on the server giving up on a taken port.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

fn status_of(server: &Server, path: &str) -> u16 {
    http::get(&server.url(path)).status
}

#[test]
fn unknown_paths_are_404() {
    let server = Server::start(media_root(), &[]);
    for path in [
        "/hls/missing.mp4/index.m3u8",
        "/hls/missing.mp4/0.ts",
        "/hls/Sub%20Dir%20%26%20%C3%BC/missing.mp4/index.m3u8",
        "/browse/missing/",
        "/browse/Sub%20Dir%20%26%20%C3%BC/missing/",
        "/no/such/route",
    ] {
        assert_eq!(status_of(&server, path), 404, "GET {path}");
    }
}

#[test]
fn paths_outside_the_root_are_refused() {
    // Serve a subfolder so that `..` would reach real media files if it were followed.
    let server = Server::start(media_root().join(media::AWKWARD_DIR), &[]);
    for path in [
        "/hls/..%2Fclip.mp4/index.m3u8",
        "/hls/%2E%2E/clip.mp4/index.m3u8",
        "/hls/%2E%2E%2Fclip.mp4/index.m3u8",
        "/browse/%2E%2E/",
        "/browse/..%2F/",
        "/hls/%2Fetc%2Fpasswd/index.m3u8",
    ] {
        let status = status_of(&server, path);
        // Not 415 either: that would mean the server looked at a file outside its root.
        assert!(
            [400, 403, 404].contains(&status),
            "GET {path} gave {status}, wanted 400, 403 or 404"
        );
    }
}

/// Checks the 415 answer for the text file that pretends to be an MP4.
fn check_not_media(server: &Server) {
    let path = format!("/hls/{}/index.m3u8", media::NOT_MEDIA);
    let reply = http::get(&server.url(&path));
    assert_eq!(reply.status, 415, "GET {path}: body {:?}", reply.text());
    let text = reply.utf8().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert!(
        !text.trim().is_empty() && text.len() <= SHORT_BODY,
        "GET {path}: wanted a short non-empty text, got {text:?}"
    );
    assert!(
        reply.mime().is_some_and(|m| m.starts_with("text/")),
        "GET {path}: Content-Type {:?}, wanted text",
        reply.content_type
    );
}

#[test]
fn non_media_file_is_415_every_time() {
    let server = Server::start(media_root(), &[]);
    // A second request must get the same answer, not a stream stuck in a failed state.
    check_not_media(&server);
    check_not_media(&server);
}

#[test]
fn good_stream_plays_while_bad_one_fails() {
    let mut server = Server::start(media_root(), &["--segment-duration", "1"]);
    let clip = &media::MP4;
    let href = format!("/hls/{}/index.m3u8", clip.rel);
    thread::scope(|s| {
        let good = s.spawn(|| {
            check_stream(&server, &href, clip, 1.0, Kind::Vod);
        });
        let bad = s.spawn(|| check_not_media(&server));
        // Re-raise with the original message rather than an opaque `Any`.
        for handle in [bad, good] {
            if let Err(panic) = handle.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
    // The good stream's segments are still served after the failure.
    let crawl = listing::crawl(&server);
    assert_eq!(crawl.playlist(clip.rel), href);
    assert!(server.is_running(), "the server exited");
}

#[test]
fn port_in_use_exits_with_one_line() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let listen = taken.local_addr().expect("local address").to_string();
    let mut cmd = server::command(media_root(), &listen, &[]);
    // The default log level: only the error should be printed.
    cmd.env_remove("RUST_LOG");
    let run = tools::run_with_timeout(&mut cmd, EXIT_TIMEOUT);
    let status = run
        .status
        .unwrap_or_else(|| panic!("hlss kept running on a taken port {listen}"));
    assert!(
        !status.success(),
        "hlss exited with {status} on a taken port"
    );
    assert!(
        !run.stderr.contains("panicked"),
        "hlss panicked instead of reporting the error:\n{}",
        run.stderr
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "wanted a one-line error on stderr, got:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.trim().is_empty(),
        "nothing should be printed on stdout, got {:?}",
        run.stdout
    );
    drop(taken);
}

#[test]
fn serving_other_machines_is_a_decision() {
    // No logins yet: listening beyond loopback without --open is refused, in one line that says
    // what to do, before anything is bound.
    let mut cmd = server::command(media_root(), "0.0.0.0:0", &[]);
    cmd.env_remove("RUST_LOG");
    let run = tools::run_with_timeout(&mut cmd, EXIT_TIMEOUT);
    let status = run.status.expect("hlss exits");
    assert!(!status.success(), "hlss served 0.0.0.0 without --open");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].contains("--open"), "{}", run.stderr);
    assert!(run.stdout.trim().is_empty(), "{}", run.stdout);
    // With --open it serves every interface: reached here through loopback.
    let mut child = server::command(media_root(), "0.0.0.0:0", &["--open"])
        .spawn()
        .expect("hlss starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("a line");
    let port = line
        .trim()
        .strip_prefix("hlss: listening on http://0.0.0.0:")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("listening line {line:?}"));
    let healthz = http::get(&format!("http://127.0.0.1:{port}/healthz")).status;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(healthz, 200);
}
