//! External tools as independent judges: ffprobe, ffmpeg and GStreamer, each run with a time limit.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Bound on one client run; a 6 s clip plays in a second or two without clock sync.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Bound on ffprobe/ffmpeg runs over local files.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Proxy variables that would send the clients' requests to 127.0.0.1 somewhere else.
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// How a child process ended.
#[derive(Debug)]
pub struct Run {
    /// `None` if it was killed for running past its time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The outcome and the tail of both outputs, for error messages.
    pub fn describe(&self) -> String {
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(30)..].join("\n")
        };
        format!(
            "{}\n--- stdout (tail)\n{}\n--- stderr (tail)\n{}",
            match self.status {
                Some(status) => format!("exited with {status}"),
                None => "killed after its time limit".to_owned(),
            },
            tail(&self.stdout),
            tail(&self.stderr)
        )
    }
}

/// Runs `cmd` to completion or kills it after `timeout`, collecting both outputs.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Run {
    super::watchdog();
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped")));
    let err = reader(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The container duration ffprobe reports for a local file.
pub fn probe_duration(path: &Path) -> f64 {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "format=duration", "-of"])
            .arg("default=noprint_wrappers=1:nokey=1")
            .arg(path),
        PROBE_TIMEOUT,
    );
    assert!(run.success(), "ffprobe {path:?}: {}", run.describe());
    if let Ok(duration) = run.stdout.trim().parse() {
        return duration;
    }
    // A file written to a pipe (Matroska without Cues) states no duration: the end of its last
    // packet is the duration.
    let packets = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "packet=pts_time,duration_time",
            ])
            .args(["-of", "csv=p=0"])
            .arg(path),
        PROBE_TIMEOUT,
    );
    packets
        .stdout
        .lines()
        .filter_map(|l| {
            let (pts, duration) = l.trim().trim_end_matches(',').split_once(',')?;
            Some(pts.parse::<f64>().ok()? + duration.parse::<f64>().unwrap_or(0.0))
        })
        .reduce(f64::max)
        .unwrap_or_else(|| panic!("ffprobe {path:?}: no duration in {:?}", run.stdout))
}

/// Checks that the segments joined end to end are one clean stream: ffprobe finds the expected kinds
/// of streams (H.264 for video) and ffmpeg decodes all of it without an error message.
pub fn check_concatenated(segments: &[Vec<u8>], video: bool, audio: bool) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("all.ts");
    std::fs::write(&path, segments.concat()).map_err(|e| e.to_string())?;

    let probe = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,codec_name",
            ])
            .args(["-of", "csv=p=0"])
            .arg(&path),
        PROBE_TIMEOUT,
    );
    if !probe.success() || !probe.stderr.trim().is_empty() {
        return Err(format!("ffprobe: {}", probe.describe()));
    }
    // Streams are listed again under their program; a set keeps each once.
    let streams: BTreeSet<&str> = probe
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let has = |kind: &str| streams.iter().any(|s| s.ends_with(&format!(",{kind}")));
    if video != has("video") || audio != has("audio") {
        return Err(format!(
            "ffprobe found streams {streams:?}; wanted video: {video}, audio: {audio}"
        ));
    }
    if video && !streams.contains(&"h264,video") {
        return Err(format!("video is not H.264: {streams:?}"));
    }

    let decode = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"]),
        PROBE_TIMEOUT,
    );
    if !decode.success() || !decode.stderr.trim().is_empty() {
        return Err(format!("ffmpeg decoding the file: {}", decode.describe()));
    }
    Ok(())
}

/// What one sink received from GStreamer, as far as `gst-launch-1.0 -v` shows it.
///
/// The tool reads `last-message` when notified, by which time a newer buffer may have replaced it,
/// so lines are duplicated or skipped (143 to 153 for 150 frames here): counts and sums of durations
/// are noise, but the last buffer is always shown and the first one nearly always.
#[derive(Debug, Clone, Copy)]
pub struct Track {
    /// Buffer reports seen; approximate, see above.
    pub buffers: usize,
    /// First timestamp, in seconds.
    pub start: f64,
    /// Last buffer end, in seconds.
    pub end: f64,
}

/// What GStreamer decoded, per kind; `None` means no buffer of that kind reached its sink.
#[derive(Debug, Clone, Copy)]
pub struct GstPlayed {
    pub video: Option<Track>,
    pub audio: Option<Track>,
}

/// Plays `url` with GStreamer's `playbin3` as fast as it decodes, until EOS, and reports what
/// reached the sinks. A GStreamer error, a missing EOS or the time limit is an `Err`.
pub fn gst_play(url: &str) -> Result<GstPlayed, String> {
    let mut run = gst_launch(url, None);
    if !run.success() && run.stderr.contains(FLAKY_DOWNLOAD) {
        // Seen a few times in hundreds of plays under heavy load, always with every request
        // answered 200 within milliseconds in the server's log: GStreamer 1.22's hlsdemux2 gives
        // up on its own. One more try, with its debug log kept should it fail again.
        eprintln!("gst-launch-1.0 failed with {FLAKY_DOWNLOAD:?}; trying once more");
        run = gst_launch(url, Some("hlsdemux2:5,adaptivedemux2:5,souphttpsrc:4"));
    }
    let error_line = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .find(|l| l.starts_with("ERROR"));
    if !run.success() || error_line.is_some() {
        return Err(format!("gst-launch-1.0 {}", run.describe()));
    }
    if !run.stdout.contains("Got EOS") {
        return Err(format!(
            "gst-launch-1.0 ended without EOS: {}",
            run.describe()
        ));
    }
    Ok(GstPlayed {
        video: track(&run.stdout, VIDEO_SINK),
        audio: track(&run.stdout, AUDIO_SINK),
    })
}

/// GStreamer's HLS demuxer's error when it has given up on downloading fragments.
const FLAKY_DOWNLOAD: &str = "Couldn't download fragments";

fn gst_launch(url: &str, debug: Option<&str>) -> Run {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(gst_args(url));
    if let Some(debug) = debug {
        cmd.env("GST_DEBUG", debug).env("GST_DEBUG_NO_COLOR", "1");
    }
    run_with_timeout(&mut cmd, CLIENT_TIMEOUT)
}

const VIDEO_SINK: &str = "vsink";
const AUDIO_SINK: &str = "asink";

/// The `gst-launch-1.0` arguments for [`gst_play`]. `-v` with `silent=false` makes each sink report
/// every buffer's timestamps, which is how the decoded length is measured; `sync=false` removes
/// real-time pacing. Legacy `playbin` is avoided: it can stall on audio+video HLS in 1.22.
pub fn gst_args(url: &str) -> Vec<String> {
    vec![
        "-v".into(),
        "playbin3".into(),
        format!("uri={url}"),
        format!("video-sink=fakesink name={VIDEO_SINK} sync=false silent=false"),
        format!("audio-sink=fakesink name={AUDIO_SINK} sync=false silent=false"),
    ]
}

/// Collects the `last-message = chain` lines `gst-launch-1.0 -v` prints for the named sink.
fn track(stdout: &str, sink: &str) -> Option<Track> {
    let field = |line: &str, name: &str| -> Option<f64> {
        let rest = &line[line.find(name)? + name.len()..];
        parse_clock_time(rest.split(',').next()?.trim())
    };
    let tag = format!("GstFakeSink:{sink}: last-message = chain");
    let mut buffers = 0;
    let (mut start, mut end) = (f64::INFINITY, f64::NEG_INFINITY);
    for line in stdout.lines().filter(|l| l.contains(&tag)) {
        let Some(pts) = field(line, "pts: ") else {
            continue;
        };
        let duration = field(line, "duration: ").unwrap_or(0.0);
        buffers += 1;
        start = start.min(pts);
        end = end.max(pts + duration);
    }
    (buffers > 0).then_some(Track {
        buffers,
        start,
        end,
    })
}

/// Parses GStreamer's `H:MM:SS.NNNNNNNNN`.
fn parse_clock_time(s: &str) -> Option<f64> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    Some(
        h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + sec.parse::<f64>().ok()?,
    )
}

/// What ffmpeg decoded.
#[derive(Debug, Clone, Copy)]
pub struct FfmpegPlayed {
    /// `out_time_us` of `-progress`: the end of the longest decoded stream.
    pub duration: f64,
    /// Video frames decoded (`frame=`); 0 without video. Shrinks when data is missing in the middle.
    pub video_frames: u64,
}

/// Decodes `input` (a URL or a file) with ffmpeg to the null muxer; it must exit 0 without a word on
/// stderr at `-v error`.
pub fn ffmpeg_play(input: &str) -> Result<FfmpegPlayed, String> {
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-hide_banner",
                "-v",
                "error",
                "-progress",
                "pipe:1",
            ])
            .args(["-i", input, "-f", "null", "-"]),
        CLIENT_TIMEOUT,
    );
    if !run.success() || !run.stderr.trim().is_empty() {
        return Err(format!("ffmpeg {}", run.describe()));
    }
    let last = |key: &str| {
        run.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(key))
            .filter_map(|v| v.trim().parse::<i64>().ok())
            .next_back()
    };
    let duration = last("out_time_us=")
        .ok_or_else(|| format!("ffmpeg reported no out_time_us: {}", run.describe()))?;
    Ok(FfmpegPlayed {
        duration: duration as f64 / 1e6,
        video_frames: last("frame=").unwrap_or(0).max(0) as u64,
    })
}

/// A self-signed certificate for 127.0.0.1 and localhost whose subject's CN is `name`, made with
/// openssl, as (`name.crt`, `name.key`) in `dir`.
pub fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let run = run_with_timeout(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        PROBE_TIMEOUT,
    );
    assert!(
        run.success(),
        "openssl (install it; `make test` does): {}",
        run.describe()
    );
    (cert, key)
}
