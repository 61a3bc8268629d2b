//! Direct runs on real pipelines: H.264 and AAC pass through undecoded, cut at the source's keyframes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hlss::config::{EncoderSettings, Preset};
use hlss::library::Source;
use hlss::segmenter::{CUT_SLACK, PTS_HZ, Segment};
use hlss::transcode::{DirectAudio, Output, Pick, Transcode, TranscodeError, scan};
use parking_lot::Mutex;
use support::media::{cached_tree, run_recipes};
use support::{tools, ts};

/// The segment target the runs are given (the server's default).
const TARGET: f64 = 2.0;
/// mpegtsmux starts its clock at one hour: a segment's PTS is this plus media time minus origin.
const MUX_OFFSET: u64 = 3600 * PTS_HZ;
/// Longest a run over a test clip may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Length of the test clips.
const SECONDS: u32 = 20;

/// H.264 (High, B-frames, a keyframe every 48 frames at 24 fps) and AAC in MP4.
const MP4: &str = "gop48.mp4";
/// The same streams in Matroska.
const MKV: &str = "gop48.mkv";
/// Keyframes where `-force_key_frames` puts them, with a GOP longer than the target.
const IRREGULAR: &str = "irregular.mp4";
/// Where [`IRREGULAR`] has its keyframes (x264 adds none: no scene cuts, no key-int).
const IRREGULAR_KEYS: &str = "0,1.3,2.1,5,5.4,9.7,12,12.5,16";
/// H.264 with AC-3 audio, which a direct run encodes to AAC beside the passed-through video.
const AC3: &str = "ac3.mkv";
/// AAC alone.
const M4A: &str = "tone.m4a";
/// [`MP4`]'s streams in MPEG-TS, as ffmpeg writes it (starting at 1.4 s): no index, scanned.
const TS: &str = "gop48.ts";
/// Open GOPs in MPEG-TS, as broadcasters make them: an I picture every 48 frames, but only the
/// first is an IDR (the rest are recovery points, where a segment cannot start).
const OPEN_GOP_TS: &str = "open_gop.ts";
/// The same streams in FLV, AVI and MPEG-PS.
const FLV: &str = "gop48.flv";
const AVI: &str = "gop48.avi";
const MPG: &str = "gop48.mpg";
/// How long a scan of a test clip may take.
const SCAN_BUDGET: Duration = Duration::from_secs(30);

fn clips() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let picture = format!("testsrc2=size=640x360:rate=24:duration={SECONDS}");
        let tone = format!("sine=frequency=440:sample_rate=48000:duration={SECONDS}");
        let lavfi = |inputs: &[&str], rest: &str| {
            let mut args = Vec::new();
            for input in inputs {
                args.extend(["-f", "lavfi", "-i", input].map(String::from));
            }
            args.extend(rest.split_whitespace().map(String::from));
            args
        };
        let h264 = "-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3";
        // The same H.264/AAC streams in each container: the file's extension picks it.
        let gop48 = lavfi(
            &[&picture, &tone],
            &format!("{h264} -g 48 -c:a aac -b:a 96k"),
        );
        let recipes = vec![
            (MP4, gop48.clone()),
            (
                IRREGULAR,
                lavfi(
                    &[&picture, &tone],
                    &format!(
                        "{h264} -g 1000 -keyint_min 1000 -sc_threshold 0 -force_key_frames \
                         {IRREGULAR_KEYS} -c:a aac -b:a 96k"
                    ),
                ),
            ),
            (
                AC3,
                lavfi(&[&picture, &tone], &format!("{h264} -g 48 -c:a ac3")),
            ),
            (M4A, lavfi(&[&tone], "-c:a aac -b:a 96k")),
            (TS, gop48.clone()),
            (FLV, gop48.clone()),
            (AVI, gop48.clone()),
            (
                MPG,
                lavfi(&[&picture, &tone], &format!("{h264} -g 48 -c:a mp2 -f vob")),
            ),
            (
                OPEN_GOP_TS,
                lavfi(
                    &[&picture, &tone],
                    &format!(
                        "{h264} -g 48 -keyint_min 48 -sc_threshold 0 -x264-params open-gop=1 \
                         -c:a aac -b:a 96k"
                    ),
                ),
            ),
        ];
        cached_tree("direct", &recipes, |dir| {
            run_recipes(dir, &recipes);
            let remux = vec![(
                MKV,
                ["-i", &dir.join(MP4).to_string_lossy(), "-c", "copy"]
                    .map(String::from)
                    .to_vec(),
            )];
            run_recipes(dir, &remux);
        })
    })
}

fn settings() -> EncoderSettings {
    EncoderSettings {
        preset: Preset::Ultrafast,
        max_height: 720,
        video_kbps: 2000,
        audio_kbps: 128,
        segment: Duration::from_secs_f64(TARGET),
        direct_max_segment: Some(Duration::from_secs(6)),
    }
}

/// Collects a run's segments and reports its end.
struct Collect {
    segments: Mutex<Vec<Segment>>,
    /// When the first segment came.
    first: Mutex<Option<Instant>>,
    end: Mutex<mpsc::Sender<Result<(), TranscodeError>>>,
}

impl Output for Collect {
    fn segment(&self, segment: Segment) {
        self.first.lock().get_or_insert_with(Instant::now);
        self.segments.lock().push(segment);
    }
    fn end(&self, result: Result<(), TranscodeError>) {
        let _ = self.end.lock().send(result);
    }
}

/// Runs a direct run of `path` from keyframe `at` to the end of the file.
fn direct(path: &Path, audio: DirectAudio, at: f64, origin: f64) -> Vec<Segment> {
    direct_timed(path, audio, at, origin).0
}

/// [`direct`], with the time its first segment took.
fn direct_timed(path: &Path, audio: DirectAudio, at: f64, origin: f64) -> (Vec<Segment>, Duration) {
    collect(path, RUN_TIMEOUT, |output| {
        let (at, origin) = (Duration::from_secs_f64(at), Duration::from_secs_f64(origin));
        Transcode::start_direct(
            &source(path),
            &settings(),
            &Pick::default(),
            audio,
            at,
            origin,
            output,
        )
    })
}

fn source(path: &Path) -> Source {
    Source::File(path.to_owned())
}

/// Starts a run with `start` and collects its segments until it ends; also returns how long
/// the first segment took from the start.
fn collect(
    path: &Path,
    timeout: Duration,
    start: impl FnOnce(Arc<dyn Output>) -> Result<Transcode, TranscodeError>,
) -> (Vec<Segment>, Duration) {
    let (tx, rx) = mpsc::channel();
    let collect = Arc::new(Collect {
        segments: Mutex::new(Vec::new()),
        first: Mutex::new(None),
        end: Mutex::new(tx),
    });
    gst::init().expect("GStreamer");
    let started = Instant::now();
    let run = start(collect.clone()).unwrap_or_else(|e| panic!("start {path:?}: {e}"));
    let ended = rx
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("{path:?} did not end in {timeout:?}"));
    drop(run);
    ended.unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let first = collect.first.lock().map_or(Duration::ZERO, |t| t - started);
    (std::mem::take(&mut *collect.segments.lock()), first)
}

fn ffprobe(args: &[&str], path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe {path:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first line of what ffprobe shows (a TS file lists its streams twice: in the program and
/// on their own).
fn ffprobe_first(args: &[&str], path: &Path) -> String {
    let text = ffprobe(args, path);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// The presentation times of the video keyframes, as ffprobe reads them without decoding.
fn keyframes(path: &Path) -> Vec<f64> {
    let csv = ffprobe(
        &[
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ],
        path,
    );
    let mut keys: Vec<f64> = csv
        .lines()
        .filter_map(|l| l.split(',').next()?.trim().parse().ok())
        .collect();
    keys.sort_by(f64::total_cmp);
    keys
}

/// The segment starts the keyframe plan gives: from each start, the first keyframe at least
/// `target - slack` later (the segmenter's cut rule).
fn plan(keys: &[f64]) -> Vec<f64> {
    let slack = CUT_SLACK.as_secs_f64().min(TARGET / 2.0);
    let mut starts = vec![keys[0]];
    for &k in &keys[1..] {
        if k - starts[starts.len() - 1] >= TARGET - slack - 1e-9 {
            starts.push(k);
        }
    }
    starts
}

/// A segment's start in media time, given the run's origin.
fn start_of(segment: &Segment, origin: f64) -> f64 {
    origin + (segment.pts_start.wrapping_sub(MUX_OFFSET) & ((1 << 33) - 1)) as f64 / PTS_HZ as f64
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write segment");
    path
}

/// The MD5 of the first decoded picture of `path` (ffmpeg's framemd5 of frame 0).
fn first_frame_md5(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-frames:v", "1", "-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg framemd5 {path:?}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit(',').next().map(|m| m.trim().to_owned()))
        .unwrap_or_else(|| panic!("no frame md5 for {path:?} in {text:?}"))
}

/// Width, height, profile and pixel format of the first video stream.
fn video_format(path: &Path) -> String {
    ffprobe_first(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,profile,pix_fmt",
            "-of",
            "csv=p=0",
        ],
        path,
    )
}

fn audio_codec(path: &Path) -> String {
    ffprobe_first(
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,profile",
            "-of",
            "csv=p=0",
        ],
        path,
    )
}

/// Checks a direct run from the start of a file with video: every segment starts with PAT, PMT
/// and an IDR with SPS and PPS, at the keyframe the plan says; the first picture decodes
/// bit-identical to the source's; size and profile are the source's. Returns the segments and
/// the plan.
fn check_from_start(path: &Path) -> FromStart {
    check_from_start_at(path, &keyframes(path))
}

/// [`check_from_start`] for a file whose keyframes are at `keys` (media time).
fn check_from_start_at(path: &Path, keys: &[f64]) -> FromStart {
    let starts = plan(keys);
    let origin = keys[0];
    let segments = direct(path, DirectAudio::Pass, origin, origin);
    for (i, segment) in segments.iter().enumerate() {
        ts::check_segment(&segment.bytes, true)
            .unwrap_or_else(|e| panic!("{path:?} segment {i}: {e}"));
        assert!(segment.starts_with_keyframe);
    }
    let got: Vec<f64> = segments.iter().map(|s| start_of(s, origin)).collect();
    assert_eq!(
        got.len(),
        starts.len(),
        "{path:?}: {got:?} versus the plan {starts:?}"
    );
    for (g, want) in got.iter().zip(&starts) {
        assert!(
            (g - want).abs() < 2.0 / PTS_HZ as f64,
            "{path:?}: {got:?} versus {starts:?}"
        );
    }

    // Joined end to end (counters jump at every boundary), ffmpeg decodes it without a word.
    let all: Vec<Vec<u8>> = segments.iter().map(|s| s.bytes.to_vec()).collect();
    tools::check_concatenated(&all, true, true).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let dir = tempfile::tempdir().expect("scratch folder");
    let first = write(dir.path(), "first.ts", &segments[0].bytes);
    assert_eq!(
        first_frame_md5(&first),
        first_frame_md5(path),
        "{path:?}: the first picture differs from the source's"
    );
    assert_eq!(video_format(&first), video_format(path), "{path:?}");
    FromStart {
        path: path.to_owned(),
        segments,
        starts,
    }
}

/// A direct run from the start of a file, and the plan it followed.
struct FromStart {
    path: PathBuf,
    segments: Vec<Segment>,
    /// Segment starts in media time.
    starts: Vec<f64>,
}

/// How alike a run from segment `k` and the run from the start must make their segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alike {
    /// Byte for byte.
    Bytes,
    /// The same timestamps and durations (audio encoded again starts on other samples).
    Timing,
}

/// Starts a run at the plan's segment `k` and compares its segments with the run from the
/// start's: the same PTS and duration always, the bytes as `alike` says (differences are
/// printed).
fn check_from(run: &FromStart, k: usize, alike: Alike) {
    let (path, from_start, starts) = (&run.path, &run.segments, &run.starts);
    let origin = starts[0];
    let later = direct(path, DirectAudio::Pass, starts[k], origin);
    assert_eq!(
        later.len(),
        from_start.len() - k,
        "{path:?}: a run from segment {k} made other segments"
    );
    for (i, (a, b)) in later.iter().zip(&from_start[k..]).enumerate() {
        assert_eq!(a.pts_start, b.pts_start, "{path:?}: segment {}", k + i);
        // The last segment's length is measured from its last frames, sound included: encoded
        // again, the sound ends on other frames.
        let last = k + i + 1 == from_start.len();
        if alike != Alike::Timing || !last {
            assert_eq!(a.duration, b.duration, "{path:?}: segment {}", k + i);
        }
        let Some(diff) = first_difference(&a.bytes, &b.bytes) else {
            continue;
        };
        eprintln!("{path:?}: segment {} from a run at {k}: {diff}", k + i);
        match alike {
            Alike::Bytes => panic!("{path:?}: segment {} differs between runs", k + i),
            Alike::Timing => {}
        }
    }
}

/// How two segments differ: by packet, and whether only in continuity counters.
fn first_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let pa: Vec<&[u8]> = a.chunks(ts::PACKET_SIZE).collect();
    let pb: Vec<&[u8]> = b.chunks(ts::PACKET_SIZE).collect();
    let differ: Vec<usize> = (0..pa.len().min(pb.len()))
        .filter(|&i| pa[i] != pb[i])
        .collect();
    let cc_only = differ
        .iter()
        .filter(|&&i| {
            let (x, y) = (pa[i], pb[i]);
            x[..3] == y[..3] && x[3] & 0xF0 == y[3] & 0xF0 && x[4..] == y[4..]
        })
        .count();
    let first = differ.first().map(|&i| {
        (
            i,
            format!("{:02x?} versus {:02x?}", &pa[i][..12], &pb[i][..12]),
        )
    });
    Some(format!(
        "{} versus {} packets; {} differ, {cc_only} of them only in the continuity counter; first: {first:?}",
        pa.len(),
        pb.len(),
        differ.len(),
    ))
}

#[test]
fn mp4_passes_through_cut_at_its_keyframes() {
    let path = clips().join(MP4);
    let run = check_from_start(&path);
    assert_eq!(
        audio_codec(&write(
            tempfile::tempdir().unwrap().path(),
            "s.ts",
            &run.segments[1].bytes
        )),
        "aac,LC"
    );
    check_from(&run, 3, Alike::Bytes);
    let last = run.segments.len() - 1;
    check_from(&run, last, Alike::Bytes);
}

#[test]
fn irregular_keyframes_make_irregular_segments() {
    let path = clips().join(IRREGULAR);
    let keys = keyframes(&path);
    let forced: Vec<f64> = IRREGULAR_KEYS
        .split(',')
        .map(|k| k.parse().unwrap())
        .collect();
    // Forced keyframes land on the frame at or before the time asked for.
    let near = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1.0 / 24.0)
    };
    assert!(
        near(&keys, &forced),
        "keyframes at {keys:?}, forced at {forced:?}"
    );
    let run = check_from_start(&path);
    // 1.3 s is too close to 0, 5.4 s to 5 s and 12.5 s to 12 s; 5 s to 9.7 s is one GOP.
    assert!(
        near(&run.starts, &[0.0, 2.1, 5.0, 9.7, 12.0, 16.0]),
        "{:?}",
        run.starts
    );
    assert!(run.segments[2].duration > Duration::from_secs(4));
    check_from(&run, 2, Alike::Bytes);
}

#[test]
fn mkv_passes_through_cut_at_its_keyframes() {
    let path = clips().join(MKV);
    let run = check_from_start(&path);
    check_from(&run, 4, Alike::Bytes);
}

#[test]
fn ac3_is_encoded_beside_the_passed_through_video() {
    let path = clips().join(AC3);
    let run = check_from_start(&path);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        audio_codec(&write(dir.path(), "s.ts", &run.segments[1].bytes)),
        "aac,LC"
    );
    check_from(&run, 3, Alike::Timing);
}

#[test]
fn aac_is_encoded_again_when_asked() {
    let path = clips().join(MP4);
    let keys = keyframes(&path);
    let segments = direct(&path, DirectAudio::Encode, keys[0], keys[0]);
    assert_eq!(segments.len(), plan(&keys).len());
    for (i, segment) in segments.iter().enumerate() {
        ts::check_segment(&segment.bytes, true).unwrap_or_else(|e| panic!("segment {i}: {e}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let segment = write(dir.path(), "s.ts", &segments[1].bytes);
    assert_eq!(audio_codec(&segment), "aac,LC");
    // avenc_aac's stereo 48 kHz, where the source is mono.
    let channels = ffprobe_first(
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=channels",
            "-of",
            "csv=p=0",
        ],
        &segment,
    );
    assert_eq!(channels, "2");
}

#[test]
fn aac_alone_passes_through() {
    let path = clips().join(M4A);
    let origin = 0.0;
    let segments = direct(&path, DirectAudio::Pass, origin, origin);
    for (i, segment) in segments.iter().enumerate() {
        ts::check_segment(&segment.bytes, false).unwrap_or_else(|e| panic!("segment {i}: {e}"));
    }
    assert_eq!(segments.len(), SECONDS as usize / TARGET as usize);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        audio_codec(&write(dir.path(), "s.ts", &segments[1].bytes)),
        "aac,LC"
    );
    // A run from segment 3 starts at the frame where the run from the start cut.
    let starts: Vec<f64> = segments.iter().map(|s| start_of(s, origin)).collect();
    let run = FromStart {
        path,
        segments,
        starts,
    };
    check_from(&run, 3, Alike::Bytes);
}

/// The scan's keyframes of `path`, in seconds of stream time.
fn scanned(path: &Path) -> (Vec<f64>, f64) {
    let scan = scan::keyframes(path, SCAN_BUDGET).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let keys = scan.keyframes.iter().map(Duration::as_secs_f64).collect();
    (keys, scan.end.as_secs_f64())
}

/// Asserts that the scanned `keys` are ffprobe's `probed` keyframes plus `offset`, within 1 ms.
fn assert_near(keys: &[f64], probed: &[f64], offset: f64) {
    assert_eq!(keys.len(), probed.len(), "{keys:?} versus {probed:?}");
    for (k, p) in keys.iter().zip(probed) {
        assert!(
            (k - p - offset).abs() < 0.001,
            "{keys:?} versus ffprobe's {probed:?} + {offset}"
        );
    }
}

#[test]
fn a_ts_scan_finds_the_keyframes_ffprobe_finds() {
    let path = clips().join(TS);
    let (keys, end) = scanned(&path);
    let probed = keyframes(&path);
    // tsdemux counts stream time from the stream's start, ffprobe from the clock's zero: the
    // same keyframes, the same distances apart.
    assert_near(&keys, &probed, keys[0] - probed[0]);
    // The last picture ends when the clip does.
    assert!(
        (end - keys[0] - f64::from(SECONDS)).abs() < 1.0 / 24.0 + 1e-6,
        "ends at {end}, first keyframe {}",
        keys[0]
    );
}

#[test]
fn a_ts_scan_keeps_idrs_only() {
    let path = clips().join(OPEN_GOP_TS);
    let (keys, _) = scanned(&path);
    let intra = keyframes(&path);
    assert!(intra.len() > 5, "ffprobe's I pictures: {intra:?}");
    assert_eq!(keys.len(), 1, "IDRs: {keys:?}");
}

#[test]
fn a_scan_of_a_damaged_file_ends() {
    let whole = std::fs::read(clips().join(TS)).expect("read clip");
    let dir = tempfile::tempdir().unwrap();
    // Cut mid-packet: the keyframes before the cut, found in time.
    let cut = write(dir.path(), "cut.ts", &whole[..whole.len() / 2 + 77]);
    let started = Instant::now();
    let (keys, _) = scanned(&cut);
    assert!((4..=6).contains(&keys.len()), "{keys:?}");
    // Noise, and sync bytes over noise: an error at once, not a hang.
    let mut noise: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let junk = write(dir.path(), "noise.ts", &noise);
    assert!(scan::keyframes(&junk, SCAN_BUDGET).is_err());
    for packet in noise.chunks_mut(ts::PACKET_SIZE) {
        packet[0] = 0x47;
    }
    let junk = write(dir.path(), "sync.ts", &noise);
    assert!(scan::keyframes(&junk, SCAN_BUDGET).is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    // And a budget too short for any file gives up cleanly.
    let err = scan::keyframes(&clips().join(TS), Duration::from_millis(1)).unwrap_err();
    assert_eq!(err.to_string(), "scan took over 0.001 s");
}

#[test]
fn flv_passes_through_cut_at_its_scanned_keyframes() {
    let path = clips().join(FLV);
    let (keys, _) = scanned(&path);
    // FLV's stream time is its own timestamps, as ffprobe reads them.
    assert_near(&keys, &keyframes(&path), 0.0);
    let run = check_from_start_at(&path, &keys);
    check_from(&run, 3, Alike::Bytes);
}

#[test]
fn avi_and_mpeg_ps_are_not_scanned() {
    for (name, kind) in [(AVI, "video/x-msvideo"), (MPG, "video/mpeg")] {
        let err = scan::keyframes(&clips().join(name), SCAN_BUDGET).unwrap_err();
        assert_eq!(err, scan::ScanError::Container(kind.into()), "{name}");
    }
}

#[test]
fn ts_passes_through_cut_at_its_scanned_keyframes() {
    let path = clips().join(TS);
    let (keys, _) = scanned(&path);
    let run = check_from_start_at(&path, &keys);
    check_from(&run, 3, Alike::Bytes);
    let last = run.segments.len() - 1;
    check_from(&run, last, Alike::Bytes);
}

/// Wall and CPU time of a direct run and of a transcode over a long 1080p file:
/// `cargo test --release --test direct speed -- --ignored --nocapture`.
#[test]
#[ignore = "slow: makes a long 1080p file and transcodes it"]
fn speed() {
    let seconds = std::env::var("HLSS_SPEED_SECONDS").map_or(300, |v| v.parse().unwrap());
    let recipes = vec![(
        "1080p.mp4",
        [
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size=1920x1080:rate=24:duration={seconds}"),
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "6M",
            "-g",
            "48",
            "-c:a",
            "aac",
        ]
        .map(String::from)
        .to_vec(),
    )];
    let path =
        cached_tree("direct-speed", &recipes, |dir| run_recipes(dir, &recipes)).join("1080p.mp4");
    let measure = |what: &str, media: f64, run: &dyn Fn() -> (Vec<Segment>, Duration)| {
        let (wall, cpu0) = (Instant::now(), cpu());
        let (segments, first) = run();
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu() - cpu0);
        println!(
            "{what}: {} segments of {media:.0} s of 1080p in {wall:.2} s wall ({:.0}x real \
             time), {cpu:.2} s CPU ({:.1} CPU-s per media hour), first segment after {:.3} s",
            segments.len(),
            media / wall,
            cpu * 3600.0 / media,
            first.as_secs_f64()
        );
    };
    let whole = f64::from(seconds);
    measure("direct", whole, &|| {
        direct_timed(&path, DirectAudio::Pass, 0.0, 0.0)
    });
    // A seek to the keyframe nearest 80 % (keyframes every 2 s from 0).
    let late = (whole * 0.8 / 2.0).round() * 2.0;
    measure("direct from 80 %", whole - late, &|| {
        direct_timed(&path, DirectAudio::Pass, late, 0.0)
    });
    measure("transcode", whole, &|| transcode(&path));
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu() -> f64 {
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces), from field 3 on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name.
    (ticks(11) + ticks(12)) / hz
}

fn transcode(path: &Path) -> (Vec<Segment>, Duration) {
    let mut settings = settings();
    settings.preset = Preset::Veryfast;
    settings.video_kbps = 3000;
    collect(path, Duration::from_secs(3600), |output| {
        let zero = Duration::ZERO;
        Transcode::start(
            &source(path),
            &settings,
            &Pick::default(),
            zero,
            Some(zero),
            output,
        )
    })
}

/// ffmpeg's `-output_ts_offset` edit list: ffprobe's keyframe times (from 1.5 s) are the media
/// times a direct run takes.
#[test]
fn mp4_whose_edit_list_starts_late() {
    let path = support::timeline_media::timeline_root().join(support::timeline_media::MP4_EDIT.rel);
    let run = check_from_start(&path);
    check_from(&run, 3, Alike::Bytes);
}
