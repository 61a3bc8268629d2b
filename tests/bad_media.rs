//! End-to-end: truncated, empty, random, text and unreadable files get a clear error within 5 s;
//! a file that breaks mid-way, or is deleted or overwritten while it streams, ends its stream
//! cleanly; a good file keeps playing throughout.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::{Server, hls, http, media, media_root, server, ts};

/// The bound on refusing a file that is not media.
const REFUSE_WITHIN: Duration = Duration::from_secs(5);
/// Bound on any one answer about a stream that broke (no request may hang until its own timeout).
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// Longest error body accepted as "a clear reason".
const SHORT_BODY: usize = 1024;
/// Seconds in the clip that breaks or changes while it streams; 1 s segments.
const BREAKING_SECONDS: u32 = 30;
/// Segments the breaking streams are served with.
const SEGMENT: &str = "1";

/// Refused outright: name and the one status it gets. A file that is not media (cut before its
/// index, empty, random bytes, text) is 415; a file the server may not read is 403, never 404,
/// because it is listed and does exist.
const REFUSED: [(&str, u16); 8] = [
    ("half.mp4", 415),
    ("head1k.mp4", 415),
    ("empty.mp4", 415),
    ("garbage.mp4", 415),
    ("garbage.mkv", 415),
    ("text.mp4", 415),
    ("text.mkv", 415),
    ("unreadable.mp4", 403),
];

/// What a segment past the point where a stream broke gets: the media ends there.
const ENDED: u16 = 404;

/// Deterministic bytes that look like nothing (xorshift), so failures reproduce.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A 30 s clip with its index at the front (`+faststart`), so a cut or a damaged middle still
/// probes and starts, then breaks part-way.
fn breaking_clip(path: &Path) {
    let s = BREAKING_SECONDS;
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=160x120:rate=10:duration={s}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate=48000:duration={s}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-g", "10", "-c:a", "aac", "-b:a", "32k", "-shortest"])
        .args(["-movflags", "+faststart"])
        .arg(path)
        .output()
        .expect("run ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The folder of bad files, plus a good one and the breaking ones.
fn bad_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("bad-media-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch folder");
    let root = dir.path().canonicalize().unwrap();
    // Readable by an unprivileged server (see `start_unprivileged`).
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let clip = std::fs::read(media_root().join(media::MP4.rel)).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(root.join(name), bytes).unwrap();
    write("good.mp4", &clip);
    // The test clips keep their index at the end: half a file has no index at all.
    write("half.mp4", &clip[..clip.len() / 2]);
    write("head1k.mp4", &clip[..1024]);
    write("empty.mp4", b"");
    write("garbage.mp4", &garbage(256 * 1024, 1));
    write("garbage.mkv", &garbage(256 * 1024, 2));
    write("text.mp4", b"This is a text file, not a video.\n");
    write(
        "text.mkv",
        "Plain text, ü and all.\n".repeat(100).as_bytes(),
    );
    write("unreadable.mp4", &clip);
    std::fs::set_permissions(
        root.join("unreadable.mp4"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();

    let whole = root.join("whole.mp4");
    breaking_clip(&whole);
    let bytes = std::fs::read(&whole).unwrap();
    write("cut.mp4", &bytes[..bytes.len() * 6 / 10]);
    let mut damaged = bytes.clone();
    let (from, to) = (bytes.len() * 4 / 10, bytes.len() * 6 / 10);
    damaged[from..to].copy_from_slice(&garbage(to - from, 3));
    write("damaged.mp4", &damaged);
    for name in ["deleted.mp4", "replaced.mp4"] {
        write(name, &bytes);
    }
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("unreadable.mp4") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    (dir, root)
}

/// The server, run as `nobody` when the tests run as root: root reads a mode-000 file anyway,
/// so only an unprivileged server can show what an unreadable file gets.
fn start_unprivileged(root: &Path, extra: &[&str]) -> Server {
    let plain = server::command(root, "127.0.0.1:0", extra);
    let mut cmd = if is_root() {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(plain.get_program())
            .args(plain.get_args())
            // `nobody` has no home; GStreamer then scans its plugins in memory.
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    } else {
        plain
    };
    cmd.env("RUST_LOG", "hlss=debug");
    Server::start_command(cmd, root)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Fetches every segment of the good file, checking each: it must play while others fail.
fn play_good(server: &Server) {
    let url = server.url("/hls/good.mp4/index.m3u8");
    let (playlist, _) = hls::poll_until_ended(&url, "VOD", support::STREAM_TIMEOUT)
        .unwrap_or_else(|e| panic!("good.mp4: {e}"));
    let base = url.strip_suffix("index.m3u8").unwrap();
    for segment in &playlist.segments {
        let bytes = ts::fetch_segment(&format!("{base}{}", segment.uri))
            .unwrap_or_else(|e| panic!("good.mp4 {}: {e}", segment.uri));
        ts::check_segment(&bytes, true).unwrap_or_else(|e| panic!("good.mp4 {}: {e}", segment.uri));
    }
}

/// Requests `path`, checking that the answer comes within `bound`.
fn timed_get(server: &Server, path: &str, bound: Duration) -> http::Reply {
    let started = Instant::now();
    let reply = http::get(&server.url(path));
    let took = started.elapsed();
    assert!(
        took <= bound,
        "GET {path} took {took:?} (bound {bound:?}), status {}",
        reply.status
    );
    reply
}

#[test]
fn bad_files_get_clear_errors_while_a_good_one_plays() {
    let (_dir, root) = bad_tree();
    let mut server = start_unprivileged(&root, &["--segment-duration", SEGMENT]);
    thread::scope(|s| {
        let good = s.spawn(|| play_good(&server));
        for (name, status) in REFUSED {
            // Twice: a failed stream must answer the same again, not hang or flip to success.
            for _ in 0..2 {
                let path = format!("/hls/{name}/index.m3u8");
                let reply = timed_get(&server, &path, REFUSE_WITHIN);
                assert_eq!(
                    reply.status,
                    status,
                    "GET {path}: {:?}, wanted {status}",
                    reply.text()
                );
                let text = reply.text();
                assert!(
                    text.lines().count() == 1 && text.len() <= SHORT_BODY,
                    "GET {path}: wanted one short line, got {text:?}"
                );
                assert!(
                    !text.contains(root.to_str().unwrap()),
                    "GET {path}: the body names a server path: {text:?}"
                );
            }
        }
        if let Err(panic) = good.join() {
            std::panic::resume_unwind(panic);
        }
    });
    assert!(server.is_running(), "the server exited");
}

/// Reads `name`'s segments in order like a player; returns how many were served before the
/// stream ended, checking that every answer is prompt and the served ones are sound.
fn play_until_it_ends(server: &Server, name: &str, mid_way: impl FnOnce()) -> usize {
    let path = format!("/hls/{name}/video.m3u8");
    let reply = timed_get(server, &path, ANSWER_WITHIN);
    assert_eq!(reply.status, 200, "GET {path}: {:?}", reply.text());
    let playlist = hls::parse(&reply.text()).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut mid_way = Some(mid_way);
    let mut served = 0;
    let mut ended = false;
    for (k, segment) in playlist.segments.iter().enumerate() {
        if k == 2
            && let Some(act) = mid_way.take()
        {
            act();
        }
        let path = format!("/hls/{name}/{}", segment.uri);
        let reply = timed_get(server, &path, ANSWER_WITHIN);
        match reply.status {
            200 if !ended => {
                // Before the damage every segment is whole; inside it a segment may lack
                // video (the decoder skipped what it could not read), but it is still TS.
                if k < 2 {
                    ts::check_segment(&reply.body, true).unwrap_or_else(|e| panic!("{path}: {e}"));
                } else {
                    let whole = reply.body.len().is_multiple_of(ts::PACKET_SIZE)
                        && reply.body.chunks(ts::PACKET_SIZE).all(|p| p[0] == 0x47);
                    assert!(whole && !reply.body.is_empty(), "{path}: not MPEG-TS");
                }
                served += 1;
            }
            200 => panic!("{path}: served after an earlier segment was refused"),
            ENDED => ended = true,
            other => panic!(
                "GET {path}: {other} {:?}, wanted 200 or {ENDED}",
                reply.text()
            ),
        }
    }
    served
}

#[test]
fn broken_and_changing_files_end_their_streams_cleanly() {
    let (_dir, root) = bad_tree();
    let mut server =
        start_unprivileged(&root, &["--segment-duration", SEGMENT, "--read-ahead", "2"]);
    let total = BREAKING_SECONDS as usize;
    thread::scope(|s| {
        let good = s.spawn(|| play_good(&server));
        // Cut at 60 %: it starts, then ends at its last good segment.
        let cut = play_until_it_ends(&server, "cut.mp4", || {});
        assert!(
            (3..total).contains(&cut),
            "cut.mp4: {cut} of {total} segments served"
        );
        // Garbage over the middle fifth: what decodes is served, the rest ends the stream.
        let damaged = play_until_it_ends(&server, "damaged.mp4", || {});
        assert!(damaged >= 3, "damaged.mp4: {damaged} segments served");
        // Deleted while streaming: the open file plays on or the stream ends; nothing hangs.
        // Asked for again afterwards, the file is gone: 404.
        let deleted = root.join("deleted.mp4");
        let after_delete = play_until_it_ends(&server, "deleted.mp4", || {
            std::fs::remove_file(&deleted).unwrap()
        });
        let gone = timed_get(&server, "/hls/deleted.mp4/index.m3u8", ANSWER_WITHIN);
        assert_eq!(
            gone.status,
            404,
            "deleted.mp4 afterwards: {:?}",
            gone.text()
        );
        // Overwritten in place while streaming.
        let replaced = root.join("replaced.mp4");
        let after_replace = play_until_it_ends(&server, "replaced.mp4", || {
            std::fs::write(&replaced, garbage(100_000, 4)).unwrap()
        });
        // Shown with --nocapture: where each stream ended.
        eprintln!(
            "segments served of {total}: cut {cut}, damaged {damaged}, deleted mid-way \
             {after_delete}, overwritten mid-way {after_replace}"
        );
        if let Err(panic) = good.join() {
            std::panic::resume_unwind(panic);
        }
    });
    assert!(server.is_running(), "the server exited");
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "a panic was logged");
}
