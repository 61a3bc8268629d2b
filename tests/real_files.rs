//! End-to-end on files as people keep them: turned phone videos, interlacing, 10-bit, surround, late audio, VFR, sparse keyframes, 2 h, 4K.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::real_media::{self, real_root};
use support::tools::{self, run_with_timeout};
use support::{Clip, Kind, SPAN_TOLERANCE, Server, check_stream_file, hls, listing, pts_delta, ts};

/// The server's default segment duration, which these tests use.
const SEGMENT_SECONDS: f64 = 2.0;

/// Bound on one ffprobe or ffmpeg run over a local file.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// How far the output's audio-minus-video start may stray from the source's.
const AV_OFFSET_TOLERANCE: f64 = 0.040;

/// The stream made from one file, joined into one TS file for ffprobe and ffmpeg.
struct Output {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn source(clip: &Clip) -> PathBuf {
    real_root().join(clip.rel)
}

/// Plays `clip` through a server started with `args`, with every check `check_stream` makes
/// (PAT, PMT and IDR at each segment's head, VOD timing, full playback in GStreamer and ffmpeg
/// to the source's duration), and returns the output.
fn play(clip: &Clip, args: &[&str]) -> Output {
    let server = Server::start(real_root(), args);
    play_on(&server, clip)
}

fn play_on(server: &Server, clip: &Clip) -> Output {
    let crawl = listing::crawl(server);
    let segments = check_stream_file(
        server,
        crawl.playlist(clip.rel),
        &source(clip),
        clip,
        SEGMENT_SECONDS,
        Kind::Vod,
    )
    .segments;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("out.ts");
    std::fs::write(&path, segments.concat()).expect("write output");
    Output { _dir: dir, path }
}

/// ffprobe's fields for each stream of `path`, keyed by `codec_type` (first stream of a kind).
fn streams(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_streams"])
            .arg(path),
        TOOL_TIMEOUT,
    );
    assert!(run.success(), "ffprobe {path:?}: {}", run.describe());
    let mut streams = BTreeMap::new();
    for block in run.stdout.split("[/STREAM]") {
        let fields: BTreeMap<String, String> = block
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if let Some(kind) = fields.get("codec_type") {
            streams.entry(kind.clone()).or_insert(fields);
        }
    }
    streams
}

/// One field of the first stream of `kind`.
fn field(path: &Path, kind: &str, name: &str) -> String {
    streams(path)
        .get(kind)
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("{path:?}: no {kind} stream with {name}"))
        .clone()
}

fn start_time(path: &Path, kind: &str) -> f64 {
    let value = field(path, kind, "start_time");
    value
        .parse()
        .unwrap_or_else(|_| panic!("{path:?}: {kind} start_time {value:?}"))
}

/// ffmpeg's `idet` verdict over the whole file: (TFF, BFF, progressive) frames, multi-frame
/// detection.
fn idet(path: &Path) -> (u64, u64, u64) {
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-i"])
            .arg(path)
            .args(["-an", "-vf", "idet", "-f", "null", "-"]),
        TOOL_TIMEOUT,
    );
    assert!(run.success(), "ffmpeg idet {path:?}: {}", run.describe());
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("Multi frame detection:"))
        .unwrap_or_else(|| panic!("no idet summary: {}", run.describe()));
    let count = |label: &str| -> u64 {
        line.split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in {line:?}"))
    };
    (count("TFF:"), count("BFF:"), count("Progressive:"))
}

/// Gaps between consecutive video frames, in milliseconds, sorted (from packet timestamps, so
/// nothing is decoded).
fn frame_gaps_ms(path: &Path) -> Vec<i64> {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
            .arg(path),
        TOOL_TIMEOUT,
    );
    assert!(
        run.success(),
        "ffprobe packets {path:?}: {}",
        run.describe()
    );
    let mut pts: Vec<f64> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    pts.sort_by(f64::total_cmp);
    let mut gaps: Vec<i64> = pts
        .windows(2)
        .map(|w| ((w[1] - w[0]) * 1000.0).round() as i64)
        .collect();
    gaps.sort_unstable();
    gaps
}

/// Which cells of a 4x4 grid over the picture at `at` seconds are bright (mostly white), as
/// ffmpeg displays it.
fn bright_cells(path: &Path, at: f64) -> Vec<(usize, usize)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let raw = dir.path().join("grid.gray");
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-ss", &at.to_string(), "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-vf", "scale=4:4:flags=area,format=gray"])
            .args(["-f", "rawvideo", "-y"])
            .arg(&raw),
        TOOL_TIMEOUT,
    );
    assert!(run.success(), "ffmpeg grid {path:?}: {}", run.describe());
    let pixels = std::fs::read(&raw).expect("read grid");
    assert_eq!(pixels.len(), 16, "grid of {path:?}");
    (0..16)
        .filter(|&i| pixels[i] > 128)
        .map(|i| (i / 4, i % 4))
        .collect()
}

#[test]
fn portrait_phone_video_streams_upright_within_max_height() {
    let clip = &real_media::PORTRAIT;
    assert_eq!(
        field(&source(clip), "video", "rotation"),
        "-90",
        "the generator's display matrix"
    );
    let out = play(clip, &[]);
    let (width, height) = (
        field(&out.path, "video", "width"),
        field(&out.path, "video", "height"),
    );
    // 1280x720 stored, 720x1280 displayed, --max-height 720 by default.
    assert_eq!((width.as_str(), height.as_str()), ("406", "720"));
    // The top of the stored picture is the right edge of the displayed one.
    let column = |c| (0..4).map(|r| (r, c)).collect::<Vec<_>>();
    assert_eq!(bright_cells(&out.path, 1.0), column(3));
    assert_eq!(
        bright_cells(&source(clip), 1.0),
        column(3),
        "ffmpeg on the source"
    );
}

#[test]
fn mirrored_video_is_shown_mirrored() {
    let clip = &real_media::MIRRORED;
    let out = play(clip, &[]);
    // The white block at the stored top left is displayed top right (a 180° turn would put
    // it bottom right; ffmpeg 5.1 itself shows this matrix turned, so no comparison with it).
    assert_eq!(bright_cells(&out.path, 1.0), [(0, 3), (1, 3)]);
}

#[test]
fn interlaced_mpeg2_comes_out_progressive() {
    check_deinterlaced(&real_media::INTERLACED);
}

#[test]
fn interlaced_h264_comes_out_progressive() {
    check_deinterlaced(&real_media::INTERLACED_H264);
}

#[test]
fn bottom_field_first_comes_out_progressive() {
    check_deinterlaced(&real_media::INTERLACED_BFF);
}

fn check_deinterlaced(clip: &Clip) {
    let (tff, bff, progressive) = idet(&source(clip));
    assert!(
        tff.max(bff) > 10 * (tff.min(bff) + progressive),
        "the source should be interlaced: idet TFF {tff}, BFF {bff}, progressive {progressive}"
    );
    let out = play(clip, &[]);
    let (tff, bff, progressive) = idet(&out.path);
    eprintln!(
        "{}: output idet TFF {tff}, BFF {bff}, progressive {progressive}",
        clip.rel
    );
    assert!(
        tff + bff <= (tff + bff + progressive) / 10,
        "output still interlaced: idet TFF {tff}, BFF {bff}, progressive {progressive}"
    );
    assert_eq!(field(&out.path, "video", "r_frame_rate"), "25/1");
    assert_eq!(field(&out.path, "video", "width"), "720");
}

#[test]
fn progressive_source_passes_the_deinterlacer_unchanged() {
    let clip = &real_media::PROGRESSIVE;
    // testsrc2's sharp moving edges look combed to idet even in progressive frames, so an
    // untouched file keeps the source's verdict; deinterlaced, nearly every frame would turn
    // progressive.
    let (source_tff, source_bff, _) = idet(&source(clip));
    let out = play(clip, &[]);
    let (tff, bff, progressive) = idet(&out.path);
    eprintln!(
        "progressive source, idet: source TFF {source_tff}, BFF {source_bff}; output TFF {tff}, \
         BFF {bff}, progressive {progressive}"
    );
    let frames = tff + bff + progressive;
    assert!(
        tff.abs_diff(source_tff) + bff.abs_diff(source_bff) <= frames / 8,
        "idet changed: source TFF {source_tff}, BFF {source_bff}; output TFF {tff}, BFF {bff}, \
         progressive {progressive}"
    );
    // check_ffmpeg already compared the frame count with the source's.
    assert_eq!(field(&out.path, "video", "r_frame_rate"), "25/1");
}

/// 10-bit sources become what every H.264 decoder plays.
fn check_eight_bit_high(clip: &Clip, source_profile: &str) {
    assert_eq!(field(&source(clip), "video", "profile"), source_profile);
    let out = play(clip, &[]);
    assert_eq!(field(&out.path, "video", "profile"), "High");
    assert_eq!(field(&out.path, "video", "pix_fmt"), "yuv420p");
}

#[test]
fn h264_high10_becomes_8_bit_high() {
    check_eight_bit_high(&real_media::HIGH10, "High 10");
}

#[test]
fn hevc_main10_becomes_8_bit_high() {
    check_eight_bit_high(&real_media::HEVC10, "Main 10");
}

fn check_downmix(clip: &Clip, codec: &str) {
    assert_eq!(field(&source(clip), "audio", "codec_name"), codec);
    assert_eq!(field(&source(clip), "audio", "channels"), "6");
    let out = play(clip, &[]);
    assert_eq!(field(&out.path, "audio", "codec_name"), "aac");
    assert_eq!(field(&out.path, "audio", "channels"), "2");
}

#[test]
fn ac3_surround_becomes_stereo_aac() {
    check_downmix(&real_media::AC3_51, "ac3");
}

#[test]
fn eac3_surround_becomes_stereo_aac() {
    check_downmix(&real_media::EAC3_51, "eac3");
}

#[test]
fn dts_surround_becomes_stereo_aac() {
    check_downmix(&real_media::DTS_51, "dts");
}

fn check_late_audio(clip: &Clip) {
    let offset = |path: &Path| start_time(path, "audio") - start_time(path, "video");
    let source_offset = offset(&source(clip));
    assert!(
        (source_offset - real_media::LATE_AUDIO_SECONDS).abs() < 0.1,
        "the generator's audio starts {source_offset:.3} s after the video"
    );
    let out = play(clip, &[]);
    let out_offset = offset(&out.path);
    eprintln!(
        "{}: audio starts {out_offset:.3} s after the video in the stream, {source_offset:.3} s in \
         the source",
        clip.rel
    );
    assert!(
        (out_offset - source_offset).abs() <= AV_OFFSET_TOLERANCE,
        "{}: audio starts {out_offset:.3} s after the video, in the source {source_offset:.3} s",
        clip.rel
    );
}

#[test]
fn late_audio_in_mp4_keeps_its_offset() {
    check_late_audio(&real_media::LATE_AUDIO_MP4);
}

#[test]
fn late_audio_in_matroska_keeps_its_offset() {
    check_late_audio(&real_media::LATE_AUDIO_MKV);
}

#[test]
fn variable_frame_rate_keeps_its_timing() {
    let clip = &real_media::VFR;
    let source_gaps = frame_gaps_ms(&source(clip));
    let out = play(clip, &[]);
    let out_gaps = frame_gaps_ms(&out.path);
    // Buckets of 10 ms: how many gaps of each length, in the source and in the stream.
    let histogram = |gaps: &[i64]| {
        let mut h = BTreeMap::new();
        for gap in gaps {
            *h.entry((gap + 5) / 10 * 10).or_insert(0i64) += 1;
        }
        h
    };
    let (source_h, out_h) = (histogram(&source_gaps), histogram(&out_gaps));
    eprintln!("VFR frame gaps (ms: count): source {source_h:?}, stream {out_h:?}");
    assert!(source_h.len() >= 2, "the generator made CFR: {source_h:?}");
    let differ: i64 = source_h
        .keys()
        .chain(out_h.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| (source_h.get(k).unwrap_or(&0) - out_h.get(k).unwrap_or(&0)).abs())
        .sum();
    assert!(
        differ <= 4,
        "frame gaps changed: source {source_h:?}, stream {out_h:?}"
    );
}

#[test]
fn sparse_keyframes_cut_on_the_grid_even_mid_gop() {
    let clip = &real_media::SPARSE_KEYFRAMES;
    let server = Server::start(real_root(), &[]);
    let href = listing::crawl(&server).playlist(clip.rel).to_owned();
    let url = server.url(&href);
    let playlist = hls::fetch(&url).expect("playlist");
    let base = url.strip_suffix("index.m3u8").expect("playlist URL");
    // Asked for first, segment 3 (6–8 s) starts 6 s into a 10 s GOP: the run that makes it
    // must decode from the keyframe before and cut exactly at 6 s.
    let mid_gop = ts::fetch_segment(&format!("{base}{}", playlist.segments[3].uri))
        .and_then(|bytes| ts::check_segment(&bytes, true))
        .unwrap_or_else(|e| panic!("segment 3, fetched first: {e}"));
    play_on(&server, clip);
    // play_on checked every segment's start against segment 0; check segment 3 of the first
    // run against it too.
    let first = ts::fetch_segment(&format!("{base}{}", playlist.segments[0].uri))
        .and_then(|bytes| ts::check_segment(&bytes, true))
        .expect("segment 0");
    let at = pts_delta(
        first.first_pts.expect("PTS"),
        mid_gop.first_pts.expect("PTS"),
    );
    assert!(
        (at - 3.0 * SEGMENT_SECONDS).abs() <= SPAN_TOLERANCE,
        "segment 3 fetched first starts {at:.3} s after segment 0"
    );
}

#[test]
fn uhd_clip_is_scaled_to_720p_when_transcoded_and_kept_when_direct() {
    let clip = &real_media::UHD;
    let out = play(clip, &["--direct", "off"]);
    assert_eq!(field(&out.path, "video", "width"), "1280");
    assert_eq!(field(&out.path, "video", "height"), "720");
    // Passed through, it stays at its own size (H.264 with short GOPs is direct by default).
    let out = play(clip, &[]);
    assert_eq!(field(&out.path, "video", "width"), "3840");
    assert_eq!(field(&out.path, "video", "height"), "2160");
}

/// Too long to play whole on CI: the plan's length, and segments at the start, middle and end
/// made by separate seeks, each self-contained and timed where the plan puts it.
#[test]
fn two_hour_file_plans_every_segment_and_serves_far_ones() {
    let clip = &real_media::TWO_HOURS;
    let server = Server::start(real_root(), &[]);
    let href = listing::crawl(&server).playlist(clip.rel).to_owned();
    let url = server.url(&href);
    let (playlist, _) = hls::poll_until_ended(&url, "VOD", support::STREAM_TIMEOUT)
        .unwrap_or_else(|e| panic!("playlist: {e}"));
    let source_duration = tools::probe_duration(&source(clip));
    hls::check_final(&playlist, source_duration, SEGMENT_SECONDS)
        .unwrap_or_else(|e| panic!("playlist: {e}"));
    let count = playlist.segments.len();
    let planned = (f64::from(real_media::TWO_HOURS_SECONDS) / SEGMENT_SECONDS).ceil() as usize;
    assert!(
        count.abs_diff(planned) <= 1,
        "{count} segments for {source_duration} s, wanted about {planned}"
    );

    // The plan counts from the earliest audio or video timestamp; segment 0 starts at the
    // first picture, which Matroska puts after the audio's (AAC priming shifts it). A segment
    // starts at a picture, so at most one frame interval after its planned time.
    let origin = start_time(&source(clip), "audio").min(start_time(&source(clip), "video"));
    let video_start = start_time(&source(clip), "video");
    let frame = 1.0 / f64::from(real_media::TWO_HOURS_FPS);
    let base = url.strip_suffix("index.m3u8").expect("playlist URL");
    let fetch = |k: usize| {
        let started = std::time::Instant::now();
        let info = ts::fetch_segment(&format!("{base}{}", playlist.segments[k].uri))
            .and_then(|bytes| ts::check_segment(&bytes, true))
            .unwrap_or_else(|e| panic!("segment {k}: {e}"));
        eprintln!("two-hour file: segment {k} in {:?}", started.elapsed());
        info.first_pts
            .unwrap_or_else(|| panic!("segment {k} has no PTS"))
    };
    let zero = fetch(0);
    for k in [1, count / 2, count - 1] {
        let at = pts_delta(zero, fetch(k)) + (video_start - origin);
        let planned = k as f64 * SEGMENT_SECONDS;
        assert!(
            at > planned - 0.001 && at < planned + frame,
            "segment {k} starts at {at:.3} s of the plan, planned {planned:.3} s (frames every \
             {frame} s)"
        );
    }
}
