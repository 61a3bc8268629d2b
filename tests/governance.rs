//! End-to-end: streams as governed resources: shared pipelines, idle clean-up, admission limits, metrics, shutdown.

mod support;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use support::media::{self, LONG, long_root};
use support::{Server, http, media_root};

fn playlist_path(rel: &str) -> String {
    let encoded: Vec<String> = rel
        .split('/')
        .map(|c| {
            c.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        })
        .collect();
    format!("/hls/{}/index.m3u8", encoded.join("/"))
}

/// Reads one sample from `/metrics`: `name` with an optional `{labels}` suffix.
fn metric(server: &Server, sample: &str) -> Option<f64> {
    let text = http::get(&server.url("/metrics")).text();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until `check` holds, for at most `timeout`.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

#[test]
fn fifty_concurrent_first_requests_share_one_pipeline() {
    let server = Server::start(media_root(), &[]);
    let url = server.url(&playlist_path(media::MP4.rel));
    let barrier = Barrier::new(50);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    http::get(&url).status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request"))
            .collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "statuses {statuses:?}");
    let stream = format!("{{stream=\"{}\"}}", media::MP4.rel);
    assert_eq!(metric(&server, "hlss_streams"), Some(1.0));
    assert_eq!(
        metric(
            &server,
            &format!("hlss_stream_transcodes_started_total{stream}")
        ),
        Some(1.0),
        "50 first requests must start exactly one pipeline"
    );
    // Each playlist request joined or started a viewer session of that one stream.
    let viewers = metric(&server, &format!("hlss_stream_viewers{stream}")).unwrap_or(0.0);
    assert!(viewers >= 1.0, "{viewers} viewers");
}

#[test]
fn an_idle_stream_is_closed_and_its_memory_freed() {
    let server = Server::start(media_root(), &["--idle-timeout", "2"]);
    let path = playlist_path(media::MP4.rel);
    let playlist = http::get(&server.url(&path)).text();
    let first = playlist
        .lines()
        .find(|l| l.starts_with("0.ts"))
        .expect("segment 0 listed")
        .to_owned();
    let base = path.trim_end_matches("index.m3u8");
    assert_eq!(
        http::get(&server.url(&format!("{base}{first}"))).status,
        200
    );
    assert!(metric(&server, "hlss_bytes_held").unwrap_or(0.0) > 0.0);
    assert!(
        eventually(Duration::from_secs(15), || {
            metric(&server, "hlss_streams") == Some(0.0)
                && metric(&server, "hlss_bytes_held") == Some(0.0)
                && metric(&server, "hlss_transcodes_running") == Some(0.0)
        }),
        "the stream is still open after its idle timeout:\n{}",
        http::get(&server.url("/metrics")).text()
    );
    // A later request starts it again cleanly.
    assert_eq!(http::get(&server.url(&path)).status, 200);
    assert_eq!(
        http::get(&server.url(&format!("{base}{first}"))).status,
        200
    );
}

#[test]
fn the_transcode_limit_gives_503_with_retry_after_and_recovers() {
    let server = Server::start(media_root(), &["--max-transcodes", "2"]);
    let files = [
        media::MP4.rel,
        media::WEBM.rel,
        media::AUDIO_ONLY.rel,
        media::VIDEO_ONLY.rel,
        media::AWKWARD.rel,
        media::EP2,
        media::EP10,
        "zz last/inner.mp4",
    ];
    let barrier = Barrier::new(files.len());
    let replies: Vec<http::Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|rel| {
                let url = server.url(&playlist_path(rel));
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    http::get(&url)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request"))
            .collect()
    });
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let busy: Vec<&http::Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        ok,
        2,
        "statuses {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(busy.len(), files.len() - 2);
    for reply in &busy {
        assert!(
            reply
                .retry_after
                .as_deref()
                .is_some_and(|v| v.parse::<u32>().is_ok()),
            "503 without a numeric Retry-After: {:?}",
            reply.retry_after
        );
        let body = reply.text();
        assert_eq!(body.lines().count(), 1, "body {body:?}");
        assert!(body.contains("busy"), "body {body:?}");
    }
    assert!(metric(&server, "hlss_transcodes_running").unwrap_or(9.0) <= 2.0);
    // Once the first streams sit idle, a refused one gets its place.
    let refused = files
        .iter()
        .zip(&replies)
        .find(|(_, r)| r.status == 503)
        .map(|(rel, _)| *rel)
        .expect("one was refused");
    let url = server.url(&playlist_path(refused));
    assert!(
        eventually(Duration::from_secs(20), || http::get(&url).status == 200),
        "{refused} is still refused after the others went idle"
    );
}

#[test]
fn sigterm_during_playback_exits_cleanly() {
    let mut server = Server::start(
        long_root(),
        &["--preset", "ultrafast", "--max-height", "240"],
    );
    let url = server.url(&playlist_path(LONG));
    let player = std::thread::spawn(move || support::tools::ffmpeg_play(&url));
    // Let playback get going: a pipeline is running and segments are in flight.
    assert!(
        eventually(Duration::from_secs(20), || {
            metric(&server, "hlss_transcodes_running").unwrap_or(0.0) >= 1.0
        }),
        "playback never started"
    );
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let status = server
        .terminate(Duration::from_secs(10))
        .expect("hlss did not exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    eprintln!("exited {:?} after SIGTERM", started.elapsed());
    let stderr = server.stderr_text();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("stopped"), "no shutdown log line: {stderr}");
    // The player sees the server go away; only its exit matters here.
    let _ = player.join();
}

#[test]
fn an_idle_stream_gives_its_transcode_to_a_new_one() {
    // Two long files, so that neither pipeline finishes on its own during the test.
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a.mp4", "b.mp4"] {
        std::fs::hard_link(long_root().join(LONG), dir.path().join(name))
            .or_else(|_| std::fs::copy(long_root().join(LONG), dir.path().join(name)).map(|_| ()))
            .expect("link the long clip");
    }
    let server = Server::start(
        dir.path(),
        &[
            "--max-transcodes",
            "1",
            "--preset",
            "ultrafast",
            "--max-height",
            "240",
        ],
    );
    assert_eq!(http::get(&server.url("/hls/a.mp4/index.m3u8")).status, 200);
    let refused = http::get(&server.url("/hls/b.mp4/index.m3u8"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    // a.mp4 keeps its pipeline (paused after its read-ahead) until it has been idle a while.
    assert!(
        eventually(Duration::from_secs(20), || {
            http::get(&server.url("/hls/b.mp4/index.m3u8")).status == 200
        }),
        "b.mp4 never got the idle stream's place"
    );
    let a = "{stream=\"a.mp4\"}";
    assert_eq!(
        metric(&server, &format!("hlss_stream_transcodes_running{a}")),
        Some(0.0),
        "the idle stream still runs a pipeline"
    );
    assert_eq!(
        http::get(&server.url("/hls/b.mp4/0.ts")).status,
        200,
        "the admitted stream serves segments"
    );
}

/// Prometheus' own Python client parses `/metrics` (Debian's python3-prometheus-client, run with
/// Debian's interpreter so a Python from elsewhere on PATH does not hide it).
#[test]
fn metrics_parse_with_the_prometheus_parser() {
    const PARSER: &str = "/usr/bin/python3";
    let server = Server::start(media_root(), &[]);
    let path = playlist_path(media::MP4.rel);
    assert_eq!(http::get(&server.url(&path)).status, 200);
    let base = path.trim_end_matches("index.m3u8");
    assert_eq!(http::get(&server.url(&format!("{base}0.ts"))).status, 200);
    assert_eq!(
        http::get(&server.url("/hls/missing.mp4/index.m3u8")).status,
        404
    );
    let text = http::get(&server.url("/metrics")).text();
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
for f in families.values():
    for s in f.samples:
        print(s.name, sorted(s.labels.items()), s.value)
print("families", " ".join(sorted(families)))
"#;
    let mut child = std::process::Command::new(PARSER)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PARSER} (install python3-prometheus-client): {e}"));
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("parser runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families = stdout
        .lines()
        .find_map(|l| l.strip_prefix("families "))
        .expect("family list");
    for expected in [
        "hlss_streams",
        "hlss_viewers",
        "hlss_transcodes_running",
        "hlss_bytes_held",
        "hlss_stream_segments_made",
        "hlss_stream_segments_served",
        "hlss_stream_realtime_factor",
        "hlss_first_playlist_seconds",
        "hlss_http_responses",
    ] {
        assert!(
            families.split(' ').any(|f| f == expected),
            "no family {expected} in {families}"
        );
    }
    assert!(
        stdout.contains("hlss_http_responses_total [('code', '404')] 1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hlss_first_playlist_seconds_count [] 1.0"),
        "{stdout}"
    );
}

#[test]
fn a_replaced_file_is_reopened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("x.mp4");
    std::fs::copy(media_root().join(media::MP4.rel), &file).expect("copy clip");
    let server = Server::start(
        dir.path(),
        &["--preset", "ultrafast", "--max-height", "240"],
    );
    let url = server.url("/hls/x.mp4/index.m3u8");
    let count = |text: &str| text.lines().filter(|l| l.starts_with("#EXTINF")).count();
    let before = count(&http::get(&url).text());
    assert_eq!(before, 3, "a 6 s clip in 2 s segments");
    // Replace it (as a copy or a download would), settled: its modification time a while ago.
    std::fs::copy(long_root().join(LONG), &file).expect("replace clip");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60)))
        .expect("set mtime");
    let after = count(&http::get(&url).text());
    assert!(
        after > 300,
        "the playlist still describes the old file: {after} segments"
    );
    assert_eq!(http::get(&server.url("/hls/x.mp4/200.ts")).status, 200);
}
