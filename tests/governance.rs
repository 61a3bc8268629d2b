//! End-to-end: streams as governed resources: shared pipelines, idle clean-up, admission limits, metrics, shutdown.

mod support;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use support::media::{self, LONG, long_copies, long_root};
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
    format!("/hls/{}/video.m3u8", encoded.join("/"))
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
    let base = path.trim_end_matches("video.m3u8");
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

/// A viewer that keeps playing `rel` (one segment after another) until `stop` is set; returns
/// the statuses it got that were not 200.
fn keep_watching(server: &Server, rel: &str, stop: &std::sync::atomic::AtomicBool) -> Vec<u16> {
    let mut errors = Vec::new();
    let mut k = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let status = http::get(&server.url(&format!("/hls/{rel}/{k}.ts"))).status;
        if status != 200 {
            errors.push(status);
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    errors
}

#[test]
fn the_transcode_limit_gives_503_with_retry_after_and_recovers() {
    let names = ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4", "f.mp4"];
    let dir = long_copies(&names);
    let server = Server::start(
        dir.path(),
        &[
            "--max-transcodes",
            "2",
            "--preset",
            "ultrafast",
            "--max-height",
            "240",
        ],
    );
    // Real overload: both places held by streams whose viewers keep watching.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let barrier = Barrier::new(names.len() - 2);
    let (replies, watch_errors) = std::thread::scope(|s| {
        let watchers: Vec<_> = names[..2]
            .iter()
            .map(|rel| {
                assert_eq!(http::get(&server.url(&playlist_path(rel))).status, 200);
                let (server, stop) = (&server, &stop);
                s.spawn(move || keep_watching(server, rel, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let handles: Vec<_> = names[2..]
            .iter()
            .map(|rel| {
                let url = server.url(&playlist_path(rel));
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let started = Instant::now();
                    (http::get(&url), started.elapsed())
                })
            })
            .collect();
        let replies: Vec<(http::Reply, Duration)> = handles
            .into_iter()
            .map(|h| h.join().expect("request"))
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let errors: Vec<u16> = watchers
            .into_iter()
            .flat_map(|h| h.join().expect("watcher"))
            .collect();
        (replies, errors)
    });
    assert!(
        watch_errors.is_empty(),
        "the active viewers got {watch_errors:?}"
    );
    for (reply, took) in &replies {
        assert_eq!(reply.status, 503, "after {took:?}: {}", reply.text());
        // A new stream waits a few seconds for a place to come free before it is refused.
        assert!(
            *took < Duration::from_secs(10),
            "refused only after {took:?}"
        );
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
    // Once the viewers stopped, a refused stream gets its place.
    let url = server.url(&playlist_path(names[2]));
    assert!(
        eventually(Duration::from_secs(20), || http::get(&url).status == 200),
        "{} is still refused after the others went quiet",
        names[2]
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
fn a_new_stream_waits_for_a_quiet_streams_transcode() {
    let dir = long_copies(&["a.mp4", "b.mp4"]);
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
    assert_eq!(http::get(&server.url("/hls/a.mp4/video.m3u8")).status, 200);
    assert_eq!(http::get(&server.url("/hls/a.mp4/0.ts")).status, 200);
    // The viewer of a.mp4 clicks on to b.mp4: b waits for a's place instead of a 503.
    let started = Instant::now();
    let b = http::get(&server.url("/hls/b.mp4/video.m3u8"));
    let waited = started.elapsed();
    assert_eq!(b.status, 200, "after {waited:?}: {}", b.text());
    assert!(
        waited < Duration::from_secs(10),
        "b.mp4 waited {waited:?} for a's place"
    );
    let a = "{stream=\"a.mp4\"}";
    assert_eq!(
        metric(&server, &format!("hlss_stream_transcodes_running{a}")),
        Some(0.0),
        "the quiet stream still runs a pipeline"
    );
    assert_eq!(
        http::get(&server.url("/hls/b.mp4/0.ts")).status,
        200,
        "the admitted stream serves segments"
    );
    eprintln!("b.mp4 admitted after {waited:?}");
}

/// Prometheus' own Python client parses `/metrics` (Debian's python3-prometheus-client, run with
/// Debian's interpreter so a Python from elsewhere on PATH does not hide it).
#[test]
fn metrics_parse_with_the_prometheus_parser() {
    const PARSER: &str = "/usr/bin/python3";
    let server = Server::start(media_root(), &[]);
    let path = playlist_path(media::MP4.rel);
    assert_eq!(http::get(&server.url(&path)).status, 200);
    let base = path.trim_end_matches("video.m3u8");
    assert_eq!(http::get(&server.url(&format!("{base}0.ts"))).status, 200);
    assert_eq!(
        http::get(&server.url("/hls/missing.mp4/video.m3u8")).status,
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
        "hlss_openings_given_up",
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
    let url = server.url("/hls/x.mp4/video.m3u8");
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

#[test]
fn metrics_and_status_can_live_on_a_port_of_their_own() {
    let mut child = support::server::command(
        media_root(),
        "127.0.0.1:0",
        &["--metrics-listen", "127.0.0.1:0"],
    )
    .spawn()
    .expect("hlss starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut base = |prefix: &str| {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        line.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('/'))
            .map(|host| format!("http://{host}"))
            .unwrap_or_else(|| panic!("wanted {prefix:?}, got {line:?}"))
    };
    let public = base("hlss: listening on http://");
    let admin = base("hlss: metrics and status on http://");
    let status = |url: String| http::get(&url).status;
    let statuses = [
        status(format!("{public}/metrics")),
        status(format!("{public}/status")),
        status(format!("{public}/healthz")),
        status(format!("{public}/")),
        status(format!("{admin}/metrics")),
        status(format!("{admin}/status")),
        status(format!("{admin}/healthz")),
        status(format!("{admin}/")),
        status(format!("{admin}/hls/{}/index.m3u8", media::MP4.rel)),
    ];
    let metrics = http::get(&format!("{admin}/metrics")).text();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(statuses, [404, 404, 200, 200, 200, 200, 200, 404, 404]);
    assert!(metrics.contains("hlss_streams "), "{metrics}");
}
