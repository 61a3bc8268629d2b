//! End-to-end: hlss plays a file to the end with the whole filesystem read-only and no writable
//! home, and a syscall trace of a full playback shows no file opened for writing.
//!
//! The sandbox is `unshare --mount --map-root-user` with every mount remounted read-only, and the
//! trace is `strace -f`. Each test skips, saying why, only when its tool itself cannot run here.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Server, hls, media, media_root, tools, ts};

/// Bound on a sandbox tool's own check run.
const TOOL_CHECK: Duration = Duration::from_secs(10);
/// Remounts every mount read-only, proves nothing is writable, then runs hlss with no home.
/// Arguments: $1 the hlss binary, $2 the media root.
const READ_ONLY_SCRIPT: &str = r#"
set -e
mount -o remount,bind,ro /
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
for d in / /tmp "$2" "$(dirname "$2")"; do
  if touch "$d/.hlss-write-probe" 2>/dev/null; then echo "still writable: $d" >&2; exit 97; fi
done
unset XDG_CACHE_HOME XDG_DATA_HOME XDG_CONFIG_HOME
export HOME=/nonexistent
exec "$1" --listen 127.0.0.1:0 "$2"
"#;
/// Syscalls that create, open or change files; each is a write unless it only opens for reading.
const TRACED: &str = "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,\
                      unlink,unlinkat,rmdir,truncate,link,linkat,symlink,symlinkat";

/// A folder holding one copy of the MP4 clip, readable by anyone.
fn one_clip() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("readonly-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch folder");
    let root = dir.path().canonicalize().unwrap();
    std::fs::copy(media_root().join(media::MP4.rel), root.join("clip.mp4")).unwrap();
    (dir, root)
}

/// Plays the clip to the end as a player would and checks the whole: every segment is sound and
/// together they decode cleanly with ffmpeg.
fn play_to_the_end(server: &Server) -> usize {
    let url = server.url("/hls/clip.mp4/index.m3u8");
    let (playlist, _) = hls::poll_until_ended(&url, "VOD", support::STREAM_TIMEOUT)
        .unwrap_or_else(|e| panic!("playlist: {e}"));
    let base = url.strip_suffix("index.m3u8").unwrap();
    let segments: Vec<Vec<u8>> = playlist
        .segments
        .iter()
        .map(|s| {
            let bytes = ts::fetch_segment(&format!("{base}{}", s.uri))
                .unwrap_or_else(|e| panic!("{}: {e}", s.uri));
            ts::check_segment(&bytes, true).unwrap_or_else(|e| panic!("{}: {e}", s.uri));
            bytes
        })
        .collect();
    tools::check_concatenated(&segments, true, true).unwrap_or_else(|e| panic!("{e}"));
    let duration = playlist.total_duration();
    assert!(
        (duration - f64::from(media::CLIP_SECONDS)).abs() <= support::DURATION_TOLERANCE,
        "played {duration} s of a {} s clip",
        media::CLIP_SECONDS
    );
    segments.len()
}

/// Why `program args` cannot run here, or `None` if it can.
fn cannot_run(program: &str, args: &[&str]) -> Option<String> {
    let run = tools::run_with_timeout(Command::new(program).args(args), TOOL_CHECK);
    (!run.success()).then(|| format!("`{program} {}`: {}", args.join(" "), run.describe()))
}

#[test]
fn plays_to_the_end_on_a_read_only_root_without_a_home() {
    if let Some(why) = cannot_run("unshare", &["--mount", "--map-root-user", "true"]) {
        eprintln!("SKIPPED: no mount namespace for a read-only root here: {why}");
        return;
    }
    let (_dir, root) = one_clip();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--map-root-user",
        "--",
        "sh",
        "-c",
        READ_ONLY_SCRIPT,
        "sh",
    ])
    .arg(env!("CARGO_BIN_EXE_hlss"))
    .arg(&root)
    .env("RUST_LOG", "hlss=debug")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut server = Server::start_command(cmd, &root);

    // `unshare` and `sh` exec, so the child is hlss itself: check what it sees.
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", server.pid()))
        .expect("read the server's mounts");
    let root_mount = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .expect("a / mount");
    assert!(
        root_mount
            .split(' ')
            .nth(5)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "the server's / is not read-only: {root_mount}"
    );

    let segments = play_to_the_end(&server);
    assert!(server.is_running(), "the server exited");
    let log = server.stderr_text();
    // The registry cache that cannot be saved must not even be mentioned.
    for noise in [
        "GStreamer-WARNING",
        "GLib-",
        "CRITICAL",
        " WARN ",
        "ERROR",
        "panicked",
    ] {
        assert!(!log.contains(noise), "{noise:?} in the log:\n{log}");
    }
    eprintln!("played {segments} segments on a read-only root with HOME=/nonexistent");
}

/// One traced call that changes the filesystem: (syscall, path, the trace line).
fn writes_in(trace: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for line in trace.lines() {
        // "PID name(args...) = result", possibly "<unfinished ...>"; args carry the flags.
        let Some(call) = line.split_once(' ').map(|(_, rest)| rest.trim_start()) else {
            continue;
        };
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        let opens = matches!(name, "open" | "openat" | "openat2");
        let writes = if opens {
            ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|flag| args.contains(flag))
        } else {
            TRACED.split(',').any(|t| t.trim() == name)
        };
        if !writes {
            continue;
        }
        let path = args.split('"').nth(1).unwrap_or("").to_owned();
        let harmless = ["/dev/", "/proc/"]
            .iter()
            .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'));
        if !harmless {
            found.push((name.to_owned(), path, line.to_owned()));
        }
    }
    found
}

/// Stops the traced server (strace's child) on every path out of the test: killing strace alone
/// would leave it running, detached.
struct Tracee(Option<u32>);

impl Drop for Tracee {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

fn child_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_full_playback_opens_nothing_for_writing() {
    if let Some(why) = cannot_run("strace", &["-f", "-qq", "-o", "/dev/null", "true"]) {
        eprintln!("SKIPPED: strace cannot run here: {why}");
        return;
    }
    let (dir, root) = one_clip();
    // A fresh, writable home: where GStreamer would save its registry cache if hlss let it.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let trace_file = dir.path().join("trace.txt");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e"])
        .arg(format!("trace={TRACED}"))
        .arg("-o")
        .arg(&trace_file)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_hlss"))
        .args(["--listen", "127.0.0.1:0"])
        .arg(&root)
        .env("HOME", &home)
        .env_remove("XDG_CACHE_HOME")
        .env("RUST_LOG", "hlss=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut server = Server::start_command(cmd, &root);
    let mut tracee = Tracee(child_of(server.pid()));
    assert!(tracee.0.is_some(), "no process under strace");

    play_to_the_end(&server);
    // A clean exit (SIGTERM) flushes the whole trace.
    drop(Tracee(tracee.0.take()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !server.is_running(),
        "strace did not end after the server stopped"
    );

    let trace = std::fs::read_to_string(&trace_file).expect("read the trace");
    assert!(
        trace.contains("clip.mp4"),
        "the trace does not show the clip being opened"
    );
    let writes = writes_in(&trace);
    assert!(
        writes.is_empty(),
        "files opened for writing or changed outside /dev and /proc:\n{}",
        writes
            .iter()
            .map(|(_, _, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        std::fs::read_dir(&home).unwrap().count(),
        0,
        "something was written into HOME"
    );
    assert_writes_detected();
}

/// The parser itself must see a write when there is one.
fn assert_writes_detected() {
    let sample = "12 openat(AT_FDCWD, \"/root/.cache/x.bin.tmpA\", O_RDWR|O_CREAT|O_EXCL, 0600) = 3\n\
                  12 openat(AT_FDCWD, \"/etc/hosts\", O_RDONLY|O_CLOEXEC) = 3\n\
                  13 mkdir(\"/root/.local\", 0755) = 0\n\
                  13 openat(AT_FDCWD, \"/dev/null\", O_WRONLY) = 4\n\
                  14 openat(AT_FDCWD, \"/proc/self/fd/x.tmp\", O_RDWR|O_CREAT|O_EXCL, 0600) = -1 ENOENT\n";
    let found: Vec<String> = writes_in(sample).into_iter().map(|(_, p, _)| p).collect();
    assert_eq!(found, ["/root/.cache/x.bin.tmpA", "/root/.local"]);
}
