//! End-to-end: compatible H.264/AAC files are passed through untouched (direct), everything else is transcoded, and says why.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use support::media::{Clip, cached_tree, lavfi_args, run_recipes};
use support::real_media::{self, real_root};
use support::tools::run_with_timeout;
use support::{Kind, Server, check_stream_file, hls, http, ts};

/// The server's segment duration in these tests.
const SEGMENT_SECONDS: f64 = 2.0;
/// Bound on one ffprobe or ffmpeg run over a local file.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// Length of the generated direct-eligible clips.
const SECONDS: u32 = 20;
/// Their frame rate: one frame is the precision a keyframe plan is held to.
const FPS: u32 = 24;

const fn clip(rel: &'static str, audio: bool) -> Clip {
    Clip {
        rel,
        video: true,
        audio,
    }
}

/// H.264 High with B-frames, a keyframe every 2 s, AAC-LC: what most libraries hold.
const MP4: Clip = clip("direct.mp4", true);
/// Keyframes at irregular times: segments of different lengths, cut where the source cut.
const IRREGULAR: Clip = clip("irregular.mp4", true);
/// Matroska with Cues (ffmpeg writes them).
const MKV: Clip = clip("direct.mkv", true);
/// Matroska written to a pipe: no Cues and no duration, so the index scans the clusters.
const MKV_NO_CUES: Clip = clip("piped.mkv", true);
/// H.264 with AC-3: the video passes, the audio is encoded beside it.
const AC3: Clip = clip("ac3.mkv", true);
/// AAC alone.
const M4A: Clip = Clip {
    rel: "song.m4a",
    video: false,
    audio: true,
};
/// H.264/AAC in MPEG-TS: no index in the container, so its keyframes come from a scan.
const TS: Clip = clip("broadcast.ts", true);
/// H.264/AAC in FLV: scanned too.
const FLV: Clip = clip("web.flv", true);
/// H.264/AAC in AVI: avidemux's times for B-frames cannot be trusted, so it transcodes.
const AVI: Clip = clip("old.avi", true);
/// MPEG-2 video in MPEG-TS, as DVB broadcasts carry it: transcoded.
const MPEG2_TS: Clip = clip("mpeg2.ts", true);
/// Open GOPs in MPEG-TS: only the first I picture is an IDR, so there is nowhere else to cut.
const OPEN_GOP_TS: Clip = clip("open_gop.ts", true);
/// Keyframes 10 s apart, over the default --max-segment of 6 s.
const LONG_GOP: Clip = clip("long_gop.mp4", true);
/// HEVC: not a codec HLS players all take.
const HEVC: Clip = clip("hevc.mp4", true);

fn recipes() -> Vec<(&'static str, Vec<String>)> {
    let s = SECONDS;
    let video = format!("testsrc2=size=1280x720:rate={FPS}:duration={s}");
    let audio = format!("sine=frequency=330:sample_rate=48000:duration={s}");
    let inputs = [video.as_str(), audio.as_str()];
    let x264 = format!(
        "-c:v libx264 -preset ultrafast -profile:v high -bf 2 -g {}",
        2 * FPS
    );
    // Matroska keeps milliseconds: at 25 fps frame times are exact there (at 24 fps ffmpeg
    // itself trips over the rounded B-frame timestamps when it reads the source back).
    let video25 = format!("testsrc2=size=1280x720:rate=25:duration={s}");
    let inputs25 = [video25.as_str(), audio.as_str()];
    let x264_25 = "-c:v libx264 -preset ultrafast -profile:v high -bf 2 -g 50";
    vec![
        (
            MP4.rel,
            lavfi_args(&inputs, &format!("{x264} -c:a aac -shortest")),
        ),
        (
            IRREGULAR.rel,
            lavfi_args(
                &inputs,
                "-c:v libx264 -preset ultrafast -bf 2 -g 1000 -sc_threshold 0 \
                 -force_key_frames 0,1.5,4,4.5,7,10,13.5,15,17.25 -c:a aac -shortest",
            ),
        ),
        (
            MKV.rel,
            lavfi_args(&inputs25, &format!("{x264_25} -c:a aac -shortest")),
        ),
        (
            AC3.rel,
            lavfi_args(&inputs25, &format!("{x264_25} -c:a ac3 -shortest")),
        ),
        (M4A.rel, lavfi_args(&[audio.as_str()], "-c:a aac -b:a 96k")),
        (
            TS.rel,
            lavfi_args(&inputs, &format!("{x264} -c:a aac -shortest")),
        ),
        (
            // Milliseconds, as in Matroska: 25 fps keeps frame times exact.
            FLV.rel,
            lavfi_args(&inputs25, &format!("{x264_25} -c:a aac -shortest")),
        ),
        (
            AVI.rel,
            lavfi_args(&inputs, &format!("{x264} -c:a aac -shortest")),
        ),
        (
            MPEG2_TS.rel,
            lavfi_args(&inputs, "-c:v mpeg2video -q:v 5 -c:a mp2 -shortest"),
        ),
        (
            OPEN_GOP_TS.rel,
            lavfi_args(
                &inputs,
                &format!("{x264} -sc_threshold 0 -x264-params open-gop=1 -c:a aac -shortest"),
            ),
        ),
        (
            LONG_GOP.rel,
            lavfi_args(
                &inputs,
                &format!(
                    "-c:v libx264 -preset ultrafast -g {} -c:a aac -shortest",
                    10 * FPS
                ),
            ),
        ),
        (
            HEVC.rel,
            lavfi_args(
                &inputs,
                "-c:v libx265 -preset ultrafast -x265-params log-level=error -tag:v hvc1 \
                 -c:a aac -shortest",
            ),
        ),
    ]
}

fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let recipes = recipes();
        cached_tree("direct", &(&recipes, MKV_NO_CUES.rel), |dir| {
            run_recipes(dir, &recipes);
            write_piped_matroska(&dir.join(MKV_NO_CUES.rel));
        })
    })
}

/// An MKV as ffmpeg writes it to a pipe: it cannot seek back to add Cues or the duration.
fn write_piped_matroska(path: &Path) {
    let video = format!("testsrc2=size=1280x720:rate=25:duration={SECONDS}");
    let audio = format!("sine=frequency=330:sample_rate=48000:duration={SECONDS}");
    let mut args = vec!["-nostdin".to_owned(), "-v".into(), "error".into()];
    args.extend(lavfi_args(
        &[video.as_str(), audio.as_str()],
        "-c:v libx264 -preset ultrafast -bf 2 -g 50 -c:a aac -shortest -f matroska pipe:1",
    ));
    let out = Command::new("ffmpeg")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffmpeg: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cues_id = [0x1C, 0x53, 0xBB, 0x6B];
    assert!(
        !out.stdout.windows(4).any(|w| w == cues_id),
        "a piped MKV with Cues"
    );
    std::fs::write(path, &out.stdout).expect("write the piped MKV");
}

fn href(rel: &str) -> String {
    format!("/hls/{rel}/index.m3u8")
}

/// The `hlss_stream_delivery` sample of `rel`: (delivery, reason).
fn delivery(server: &Server, rel: &str) -> (String, String) {
    let text = http::get(&server.url("/metrics")).text();
    let prefix = format!("hlss_stream_delivery{{stream=\"{rel}\",delivery=\"");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no delivery for {rel} in /metrics:\n{text}"));
    let (delivery, rest) = line.split_once('"').expect("a quoted delivery");
    let reason = rest
        .strip_prefix(",reason=\"")
        .and_then(|r| r.split_once('"'))
        .map_or("", |(reason, _)| reason);
    (delivery.to_owned(), reason.to_owned())
}

/// ffprobe's `key=value` lines for the first video stream of `path`.
fn video_fields(path: &Path) -> Vec<String> {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .args([
                "stream=codec_name,profile,width,height,pix_fmt",
                "-of",
                "default=noprint_wrappers=1",
            ])
            .arg(path),
        TOOL_TIMEOUT,
    );
    assert!(run.success(), "ffprobe {path:?}: {}", run.describe());
    // A TS file lists its streams twice (under its program too): keep each field once.
    let mut fields: Vec<String> = Vec::new();
    for line in run.stdout.lines() {
        if !fields.iter().any(|f| f == line) {
            fields.push(line.to_owned());
        }
    }
    fields
}

/// The MD5 of the first decoded picture of `path`.
fn first_frame_md5(path: &Path) -> String {
    let run = run_with_timeout(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-frames:v", "1", "-f", "framemd5", "-"]),
        TOOL_TIMEOUT,
    );
    assert!(
        run.success(),
        "ffmpeg framemd5 {path:?}: {}",
        run.describe()
    );
    run.stdout
        .lines()
        .rfind(|l| !l.starts_with('#'))
        .and_then(|l| l.rsplit(',').next())
        .map(|md5| md5.trim().to_owned())
        .unwrap_or_else(|| panic!("no framemd5 line for {path:?}: {}", run.stdout))
}

/// Keyframe times of the source's video, from ffprobe.
fn source_keyframes(path: &Path) -> Vec<f64> {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-skip_frame",
                "nokey",
            ])
            .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
            .arg(path),
        TOOL_TIMEOUT,
    );
    assert!(
        run.success(),
        "ffprobe keyframes {path:?}: {}",
        run.describe()
    );
    run.stdout
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

fn write_temp(bytes: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write output");
    (dir, path)
}

/// Plays `clip` through the server with every check `check_stream` makes (PAT, PMT and IDR at
/// each segment's head, EXTINF against PTS spans, full playback in GStreamer and ffmpeg), and
/// returns the playlist and the segments.
fn play_direct(server: &Server, clip: &Clip) -> (hls::Playlist, Vec<Vec<u8>>) {
    let played = check_stream_file(
        server,
        &href(clip.rel),
        &root().join(clip.rel),
        clip,
        SEGMENT_SECONDS,
        Kind::Vod,
    );
    let (found, reason) = delivery(server, clip.rel);
    assert_eq!(found, "direct", "{} transcoded: {reason}", clip.rel);
    let playlist = played.versions.last().cloned().expect("a playlist");
    (playlist, played.segments)
}

#[test]
fn h264_aac_mp4_passes_at_its_own_size_and_bits() {
    let server = Server::start(root(), &[]);
    let (playlist, segments) = play_direct(&server, &MP4);
    let source = root().join(MP4.rel);
    let (_dir, out) = write_temp(&segments.concat(), "out.ts");
    // Same codec, profile, size and pixel format: nothing was scaled or re-encoded.
    assert_eq!(video_fields(&out), video_fields(&source));
    // The first picture decodes to the very same pixels.
    let (_first, first) = write_temp(&segments[0], "first.ts");
    assert_eq!(first_frame_md5(&first), first_frame_md5(&source));
    // Cut where the source has keyframes: every 2 s.
    assert_eq!(playlist.segments.len(), (SECONDS / 2) as usize);
    // Direct runs take no transcode place.
    let text = http::get(&server.url("/metrics")).text();
    assert!(
        text.lines().any(|l| l == "hlss_transcodes_running 0"),
        "{text}"
    );
}

#[test]
fn irregular_keyframes_make_segments_from_keyframe_to_keyframe() {
    let server = Server::start(root(), &[]);
    let (playlist, segments) = play_direct(&server, &IRREGULAR);
    let keyframes = source_keyframes(&root().join(IRREGULAR.rel));
    // Each segment starts on a source keyframe at least 2 s (less the cut slack of 0.25 s) after
    // the previous start: 1.5, 4.5 and 15 come too soon after one.
    let expected = [0.0, 4.0, 7.0, 10.0, 13.5, 17.25];
    assert_eq!(
        playlist.segments.len(),
        expected.len(),
        "{:?}",
        playlist.lines
    );
    let first_pts: Vec<u64> = segments
        .iter()
        .map(|s| {
            ts::check_segment(s, true)
                .expect("segment")
                .first_pts
                .expect("a PTS")
        })
        .collect();
    let frame = 1.0 / f64::from(FPS);
    for (k, start) in expected.iter().enumerate() {
        assert!(
            keyframes.iter().any(|kf| (kf - start).abs() < frame / 2.0),
            "planned start {start} is not a source keyframe ({keyframes:?})"
        );
        let at = support::pts_delta(first_pts[0], first_pts[k]);
        assert!(
            (at - start).abs() < frame,
            "segment {k} starts at {at:.3} s, not {start}"
        );
    }
    // EXTINF within one frame of each segment's own span; the target is the longest, rounded.
    for k in 0..expected.len() - 1 {
        let span = support::pts_delta(first_pts[k], first_pts[k + 1]);
        let extinf = playlist.segments[k].duration;
        assert!(
            (span - extinf).abs() < frame,
            "segment {k}: EXTINF {extinf} spans {span}"
        );
    }
    assert_eq!(playlist.target_duration, 4);
}

#[test]
fn a_seek_anywhere_starts_on_the_planned_idr_with_the_same_bytes() {
    for clip in [&MP4, &TS] {
        seek_anywhere(clip);
    }
}

fn seek_anywhere(clip: &Clip) {
    let server = Server::start(root(), &[]);
    let (playlist, segments) = play_direct(&server, clip);
    // A fresh server asked for segments in the middle and at the end first: their runs seek
    // straight to the keyframe.
    let fresh = Server::start(root(), &[]);
    let base = fresh.url(&format!("/hls/{}/", clip.rel));
    assert_eq!(http::get(&fresh.url(&href(clip.rel))).status, 200);
    let n = playlist.segments.len();
    for k in [n / 2, n - 1, 3] {
        let bytes = ts::fetch_segment(&format!("{base}{k}.ts")).expect("segment");
        let info = ts::check_segment(&bytes, true).expect("starts with PAT, PMT, IDR");
        let from_start = ts::check_segment(&segments[k], true).expect("segment");
        let rel = clip.rel;
        assert_eq!(
            info.first_pts, from_start.first_pts,
            "{rel}: segment {k}'s PTS"
        );
        assert!(
            bytes == segments[k],
            "{rel}: segment {k} differs between a run from the start and one that sought there"
        );
    }
}

#[test]
fn mpeg_ts_and_flv_pass_cut_at_their_scanned_keyframes() {
    let server = Server::start(root(), &[]);
    for clip in [&TS, &FLV] {
        let (playlist, segments) = play_direct(&server, clip);
        // Keyframes every 2 s, as in the MP4.
        assert_eq!(
            playlist.segments.len(),
            (SECONDS / 2) as usize,
            "{}",
            clip.rel
        );
        let (_dir, out) = write_temp(&segments.concat(), "out.ts");
        assert_eq!(video_fields(&out), video_fields(&root().join(clip.rel)));
        assert_eq!(codecs(&segments), ["aac", "h264"], "{}", clip.rel);
    }
}

/// The codec names of the streams of `segments` joined, sorted, each once.
fn codecs(segments: &[Vec<u8>]) -> Vec<String> {
    let (_dir, out) = write_temp(&segments.concat(), "out.ts");
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
            ])
            .arg(&out),
        TOOL_TIMEOUT,
    );
    let mut names: Vec<String> = run
        .stdout
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    // A TS file lists its streams twice (under its program too).
    names.sort();
    names.dedup();
    names
}

#[test]
fn matroska_with_and_without_cues_ac3_and_aac_alone_pass_too() {
    let server = Server::start(root(), &[]);
    play_direct(&server, &MKV);
    play_direct(&server, &MKV_NO_CUES);
    // The AC-3 track comes out as AAC beside the untouched video.
    let (_, segments) = play_direct(&server, &AC3);
    assert_eq!(codecs(&segments), ["aac", "h264"]);
    let (_, segments) = play_direct(&server, &M4A);
    assert_eq!(codecs(&segments), ["aac"]);
}

#[test]
fn what_cannot_pass_is_transcoded_and_says_why() {
    let server = Server::start(root(), &[]);
    let real = Server::start(real_root(), &[]);
    let cases: [(&Server, &Clip, &str); 8] = [
        (&server, &AVI, "video/x-msvideo container is not scanned"),
        (&server, &MPEG2_TS, "not H.264"),
        (&server, &OPEN_GOP_TS, "over --max-segment"),
        (&server, &LONG_GOP, "over --max-segment"),
        (&server, &HEVC, "not H.264"),
        (&real, &real_media::HIGH10, "10-bit"),
        (&real, &real_media::PORTRAIT, "turned or flipped"),
        (&real, &real_media::INTERLACED_H264, "interlaced"),
    ];
    for (server, clip, why) in cases {
        assert_eq!(
            http::get(&server.url(&href(clip.rel))).status,
            200,
            "{}",
            clip.rel
        );
        let (found, reason) = delivery(server, clip.rel);
        assert_eq!(found, "transcode", "{}", clip.rel);
        assert!(
            reason.contains(why),
            "{}: reason {reason:?}, expected {why:?}",
            clip.rel
        );
        let bytes = ts::fetch_segment(&server.url(&format!("/hls/{}/0.ts", clip.rel)))
            .unwrap_or_else(|e| panic!("{}: {e}", clip.rel));
        ts::check_segment(&bytes, true).unwrap_or_else(|e| panic!("{}: {e}", clip.rel));
    }
    // And `--direct off` transcodes what would pass.
    let off = Server::start(root(), &["--direct", "off"]);
    assert_eq!(http::get(&off.url(&href(MP4.rel))).status, 200);
    assert_eq!(delivery(&off, MP4.rel).0, "transcode");
}
