//! Keyframe index against ffprobe on files ffmpeg makes at test time (MP4, fMP4, MOV, MKV, WebM),
//! damaged files, the committed fuzz regression corpus, and the time a 2-hour table takes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use hlss::library::index::{
    self, AudioCodec, Chroma, Container, Index, IndexError, Limits, Method, VideoCodec,
};

/// Largest difference allowed between our keyframe times and ffprobe's.
const TOLERANCE_S: f64 = 0.001;

/// Runs ffmpeg with `args` (after `-y -v error`), writing `out` in `dir`; `None` (with a message)
/// if ffmpeg is missing, so the test is skipped on machines without it.
fn ffmpeg(dir: &Path, out: &str, args: &str) -> Option<PathBuf> {
    let path = dir.join(out);
    let status = Command::new("ffmpeg")
        .args(["-y", "-v", "error"])
        .args(args.split_whitespace())
        .arg(&path)
        .status();
    match status {
        Ok(s) if s.success() => Some(path),
        Ok(s) => panic!("ffmpeg {args} {out}: {s}"),
        Err(e) => {
            eprintln!("SKIPPED: ffmpeg not runnable ({e}); `make test-deps` installs it");
            None
        }
    }
}

/// ffprobe's video keyframe packet times (`flags` has K), in seconds, ascending.
fn ffprobe_keyframes(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs where ffmpeg does");
    let mut keys: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (pts, flags) = l.split_once(',')?;
            flags.contains('K').then(|| pts.parse().ok())?
        })
        .collect();
    keys.sort_by(f64::total_cmp);
    keys
}

/// ffprobe's `start_time` of the first stream of `kind` (`v` or `a`).
fn ffprobe_start(path: &Path, kind: &str) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", &format!("{kind}:0")])
        .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: no {kind} start_time", path.display()))
}

/// Indexes `path` and checks every keyframe time and the start against ffprobe.
fn check_against_ffprobe(path: &Path) -> Index {
    let name = path.file_name().unwrap().to_string_lossy();
    let ix = index::index(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let v = ix
        .video
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no video"));
    let ours: Vec<f64> = v.keyframes.iter().map(|&k| v.seconds(k)).collect();
    let theirs = ffprobe_keyframes(path);
    assert!(!theirs.is_empty(), "{name}: ffprobe found no keyframes");
    let same = ours.len() == theirs.len()
        && ours
            .iter()
            .zip(&theirs)
            .all(|(a, b)| (a - b).abs() <= TOLERANCE_S);
    assert!(
        same,
        "{name}: keyframes differ\n ours:    {ours:?}\n ffprobe: {theirs:?}"
    );
    let start = ffprobe_start(path, "v");
    assert!(
        (v.seconds(v.start) - start).abs() <= TOLERANCE_S,
        "{name}: video start {} vs ffprobe {start}",
        v.seconds(v.start)
    );
    assert!(
        v.end > *v.keyframes.last().unwrap(),
        "{name}: end {}",
        v.end
    );
    if let Some(a) = &ix.audio {
        let start = ffprobe_start(path, "a");
        let ours = index::seconds(a.start, a.timescale);
        assert!(
            (ours - start).abs() <= TOLERANCE_S,
            "{name}: audio start {ours} vs ffprobe {start}"
        );
    }
    eprintln!(
        "{name}: {} keyframes, {:.3}..{:.3} s, {}",
        v.keyframes.len(),
        v.seconds(v.start),
        v.seconds(v.end),
        v.codec.name()
    );
    ix
}

/// 8 s of 320x240 25 fps test pattern with a 440 Hz tone.
const AV: &str = "-f lavfi -i testsrc2=size=320x240:rate=25:duration=8 -f lavfi -i sine=duration=8";
/// x264 with B-frames (ctts, and an edit list in MP4) and a keyframe every second.
const X264: &str = "-c:v libx264 -preset ultrafast -bf 2 -g 25 -pix_fmt yuv420p";
/// Irregular keyframes that no fixed interval predicts.
const IRREGULAR: &str = "-force_key_frames 0,0.56,2.2,2.96,5.04,7.6 -sc_threshold 0 -g 1000";

fn h264(ix: &Index) -> &hlss::library::index::H264 {
    match &ix.video.as_ref().unwrap().codec {
        VideoCodec::H264(h) => h,
        other => panic!("not H.264: {other:?}"),
    }
}

#[test]
fn mp4_family_matches_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("end.mp4", format!("{AV} {X264} -c:a aac")),
        (
            "faststart.mp4",
            format!("{AV} {X264} -c:a aac -movflags +faststart"),
        ),
        (
            "frag.mp4",
            format!("{AV} {X264} -c:a aac -movflags frag_keyframe+empty_moov"),
        ),
        (
            "frag_sidx.mp4",
            format!(
                "{AV} {X264} -c:a aac -movflags frag_keyframe+empty_moov+default_base_moof+global_sidx"
            ),
        ),
        ("irregular.mp4", format!("{AV} {X264} {IRREGULAR} -c:a aac")),
        ("movie.mov", format!("{AV} {X264} -c:a aac")),
        ("movie.m4v", format!("{AV} {X264} -an")),
        // Video starts 0.52 s late: an empty edit, then media time 1024 (the B-frame delay).
        (
            "late.mp4",
            format!("-itsoffset 0.5 {AV} -map 0:v -map 1:a {X264} -c:a aac -copyts"),
        ),
        // Both tracks behind empty edits (audio at 0.476 s).
        (
            "offset.mp4",
            format!("{AV} {X264} -c:a aac -output_ts_offset 0.5"),
        ),
        (
            "high10.mp4",
            format!("{AV} -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p10le -an"),
        ),
        (
            "hevc.mp4",
            format!(
                "{AV} -c:v libx265 -preset ultrafast -x265-params log-level=none:keyint=25 -tag:v hvc1 -an"
            ),
        ),
        ("mp3.mp4", format!("{AV} {X264} -c:a libmp3lame")),
    ];
    for (name, args) in &cases {
        let Some(path) = ffmpeg(d, name, args) else {
            return;
        };
        let ix = check_against_ffprobe(&path);
        assert_eq!(ix.container, Container::Mp4);
        let method = if name.starts_with("frag") {
            Method::Fragments
        } else {
            Method::SampleTable
        };
        assert_eq!(ix.method, method, "{name}");
        match *name {
            "high10.mp4" => {
                let h = h264(&ix);
                assert_eq!((h.profile, h.bit_depth), (110, Some(10)), "{name}");
            }
            "hevc.mp4" => assert_eq!(ix.video.unwrap().codec, VideoCodec::Hevc),
            "mp3.mp4" => assert!(!ix.audio.unwrap().codec.is_aac_lc()),
            "movie.m4v" => assert!(ix.audio.is_none()),
            _ => {
                let h = h264(&ix);
                assert_eq!(h.bit_depth, Some(8), "{name}");
                assert_eq!(h.chroma, Some(Chroma::Yuv420), "{name}");
                assert_eq!(h.progressive, Some(true), "{name}");
                assert_eq!(h.coded_size, Some((320, 240)), "{name}");
                assert_eq!(ix.video.as_ref().unwrap().rotation, 0, "{name}");
                let a = ix.audio.as_ref().unwrap();
                assert_eq!(
                    a.codec,
                    AudioCodec::Aac {
                        object_type: Some(2)
                    },
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn matroska_family_matches_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("cues.mkv", format!("{AV} {X264} -c:a aac")),
        (
            "cues_front.mkv",
            format!("{AV} {X264} -c:a aac -reserve_index_space 4096"),
        ),
        ("irregular.mkv", format!("{AV} {X264} {IRREGULAR} -c:a aac")),
        (
            "opus.webm",
            format!("{AV} -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -g 25 -c:a libopus"),
        ),
        (
            "interlaced.mkv",
            format!(
                "{AV} -c:v libx264 -preset ultrafast -g 25 -flags +ildct+ilme -x264-params tff=1 -an"
            ),
        ),
    ];
    for (name, args) in &cases {
        let Some(path) = ffmpeg(d, name, args) else {
            return;
        };
        let ix = check_against_ffprobe(&path);
        assert_eq!(ix.container, Container::Matroska);
        assert_eq!(ix.method, Method::Cues, "{name}");
        match *name {
            "opus.webm" => {
                assert_eq!(ix.video.unwrap().codec, VideoCodec::Vp9);
                assert!(!ix.audio.unwrap().codec.is_aac_lc());
            }
            "interlaced.mkv" => assert_eq!(h264(&ix).progressive, Some(false)),
            _ => {
                // x264's ultrafast preset makes Main profile (no 8x8 transform).
                assert_eq!(h264(&ix).profile, 77, "{name}");
                assert!(ix.audio.unwrap().codec.is_aac_lc(), "{name}");
            }
        }
    }
}

/// A phone-style rotation in the tkhd display matrix (ffmpeg 5.1 cannot write one: patched in).
#[test]
fn mp4_display_rotation_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = ffmpeg(dir.path(), "upright.mp4", &format!("{AV} {X264} -an")) else {
        return;
    };
    let mut data = std::fs::read(&path).unwrap();
    let tkhd = data.windows(4).position(|w| w == b"tkhd").unwrap() + 4;
    assert_eq!(data[tkhd], 0, "version 0 tkhd");
    // version/flags, 5 words, 16 bytes, then the matrix a b u c d v x y w.
    let matrix = tkhd + 4 + 20 + 16;
    let words: [u32; 4] = [0, 0x0001_0000, 0, 0xFFFF_0000];
    for (i, w) in words.iter().enumerate() {
        data[matrix + 4 * i..matrix + 4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    std::fs::write(&path, &data).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream_side_data=rotation", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let theirs: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let ours = index::index(&path).unwrap().video.unwrap().rotation;
    assert_eq!((ours, theirs), (-90, -90));
}

/// Audio-only files: no video track, the audio's codec and start (AAC-only files may pass through).
#[test]
fn audio_only_files() {
    let dir = tempfile::tempdir().unwrap();
    let tone = "-f lavfi -i sine=duration=5 -c:a aac";
    for (name, container) in [
        ("tone.m4a", Container::Mp4),
        ("tone.mka", Container::Matroska),
    ] {
        let Some(path) = ffmpeg(dir.path(), name, tone) else {
            return;
        };
        let ix = index::index(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ix.container, container);
        assert!(ix.video.is_none(), "{name}");
        let a = ix.audio.unwrap();
        assert!(a.codec.is_aac_lc(), "{name}: {:?}", a.codec);
        let start = index::seconds(a.start, a.timescale);
        assert!(
            (start - ffprobe_start(&path, "a")).abs() <= TOLERANCE_S,
            "{name}: {start}"
        );
    }
}

/// Matroska written to a pipe has no Cues (and no Duration): the index scans the clusters.
#[test]
fn matroska_without_cues_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nocues.mkv");
    let args = format!("-y -v error {AV} {X264} {IRREGULAR} -c:a aac -f matroska pipe:1");
    let out = match Command::new("ffmpeg")
        .args(args.split_whitespace())
        .stdout(Stdio::piped())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("SKIPPED: ffmpeg not runnable ({e})");
            return;
        }
    };
    assert!(out.status.success());
    // The Cues element's ID must not be in the file.
    let cues_id = [0x1C, 0x53, 0xBB, 0x6B];
    assert!(
        !out.stdout.windows(4).any(|w| w == cues_id),
        "piped mkv has Cues"
    );
    std::fs::write(&path, &out.stdout).unwrap();
    let ix = check_against_ffprobe(&path);
    assert_eq!(ix.method, Method::ClusterScan);
    let v = ix.video.unwrap();
    // 8 s of frames from the first one's time (B-frames delay it by a frame or so).
    let span = v.seconds(v.end) - v.seconds(v.start);
    assert!((span - 8.0).abs() < 0.002, "{span} s from start to end");
}

/// Every prefix and many damaged copies of real files give an error or an index, never a panic.
#[test]
fn truncated_and_damaged_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let short = "-f lavfi -i testsrc2=size=64x48:rate=10:duration=3 -f lavfi -i sine=duration=3";
    let cases = [
        ("a.mp4", format!("{short} {X264} -g 10 -c:a aac")),
        (
            "f.mp4",
            format!("{short} {X264} -g 10 -c:a aac -movflags frag_keyframe+empty_moov"),
        ),
        ("a.mkv", format!("{short} {X264} -g 10 -c:a aac")),
    ];
    for (name, args) in &cases {
        let Some(path) = ffmpeg(dir.path(), name, args) else {
            return;
        };
        let data = std::fs::read(&path).unwrap();
        let whole = index::index_bytes(&data).unwrap();
        assert!(whole.video.is_some());
        let step = (data.len() / 400).max(1);
        for n in (0..data.len()).step_by(step) {
            let _ = index::index_bytes(&data[..n]);
        }
        // A file cut before its moov (or mid-way) is an error.
        assert!(
            index::index_bytes(&data[..data.len() / 2]).is_err()
                || name.ends_with(".mkv")
                || name.starts_with('f')
        );
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..300 {
            let mut d = data.clone();
            for _ in 0..4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let at = (rng % d.len() as u64) as usize;
                d[at] = (rng >> 32) as u8;
            }
            let _ = index::index_bytes(&d);
        }
    }
    assert!(matches!(
        index::index_bytes(b"\x47\x40\x00\x10not a container"),
        Err(IndexError::Unsupported)
    ));
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/index")
}

/// The committed fuzz regression corpus: each file, as either container, without a panic.
#[test]
fn fuzz_corpus_replays_without_panics() {
    let Ok(entries) = std::fs::read_dir(corpus_dir()) else {
        panic!("tests/corpus/index is missing");
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        for c in [Container::Mp4, Container::Matroska] {
            let got = index::index_reader_as(c, std::io::Cursor::new(&data), &Limits::default());
            if let Ok(Index { video: Some(v), .. }) = got {
                assert!(v.timescale > 0 && v.end >= v.start, "{}", path.display());
                assert!(v.keyframes.windows(2).all(|w| w[0] < w[1]));
            }
        }
        let got = index::index_bytes(&data);
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with("seed") {
            let ix = got.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ix.video.unwrap().keyframes.len(), 3, "{name}");
        }
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}

/// A 2-hour 1080p-like file's tables (same sample counts as a real one: 25 fps, 2 s GOPs with
/// B-frames, 48 kHz AAC), made tiny by a 64x36 picture: prints how long each index takes, as MP4,
/// as MKV with Cues and as MKV without Cues (the cluster scan).
#[test]
fn two_hour_index_time() {
    let dir = tempfile::tempdir().unwrap();
    let args = "-f lavfi -i color=c=gray:size=64x36:rate=25:duration=7200 \
                -f lavfi -i anullsrc=r=48000:cl=mono -t 7200 \
                -c:v libx264 -preset ultrafast -bf 2 -g 50 -c:a aac -b:a 8k";
    let Some(mp4) = ffmpeg(dir.path(), "two_hours.mp4", args) else {
        return;
    };
    let copy = format!("-i {} -c copy", mp4.display());
    let mkv = ffmpeg(dir.path(), "two_hours.mkv", &copy).unwrap();
    let piped = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mp4)
        .args(["-c", "copy", "-f", "matroska", "pipe:1"])
        .output()
        .unwrap();
    let nocues = dir.path().join("two_hours_nocues.mkv");
    std::fs::write(&nocues, &piped.stdout).unwrap();
    for (path, method) in [
        (&mp4, Method::SampleTable),
        (&mkv, Method::Cues),
        (&nocues, Method::ClusterScan),
    ] {
        let t = Instant::now();
        let ix = index::index(path).unwrap();
        let took = t.elapsed();
        assert_eq!(ix.method, method);
        let v = ix.video.unwrap();
        eprintln!(
            "2-hour {} ({} MB, {method:?}): {} keyframes indexed in {took:?}",
            path.file_name().unwrap().to_string_lossy(),
            std::fs::metadata(path).unwrap().len() >> 20,
            v.keyframes.len()
        );
        assert_eq!(v.keyframes.len(), 3600);
        assert!((v.seconds(v.end) - v.seconds(v.start) - 7200.0).abs() < 0.1);
        assert!(took < Limits::default().max_time);
    }
}

/// ffprobe's video keyframe packets as (dts seconds, byte position), in file order.
fn ffprobe_keyframe_positions(path: &Path) -> Vec<(f64, u64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "packet=dts_time,pos,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs where ffmpeg does");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(',');
            let dts = fields.next()?.parse().ok()?;
            let pos = fields.next()?.parse().ok()?;
            fields.next()?.contains('K').then_some((dts, pos))
        })
        .collect()
}

#[test]
fn keyframe_byte_positions_match_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let source = "-f lavfi -i testsrc2=size=320x240:rate=25:duration=8 -f lavfi \
                  -i sine=duration=8 -c:v libx264 -preset ultrafast -g 25 -c:a aac";
    for name in ["offsets.mp4", "offsets.mkv"] {
        let Some(path) = ffmpeg(dir.path(), name, source) else {
            return;
        };
        let ours = index::keyframe_offsets(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = ffprobe_keyframe_positions(&path);
        assert_eq!(
            ours.keyframes.len(),
            theirs.len(),
            "{name}: {ours:?} vs {theirs:?}"
        );
        let mp4 = name.ends_with(".mp4");
        for (&(ns, at), &(dts, pos)) in ours.keyframes.iter().zip(&theirs) {
            // MP4: the sample's own offset. Matroska: the block's place as the Cues give it
            // (ffprobe says where the block's element starts; ours is within its header).
            let slack = if mp4 { 0 } else { 16 };
            assert!(
                at.abs_diff(pos) <= slack,
                "{name}: keyframe at {at}, ffprobe {pos}"
            );
            if mp4 {
                assert!(
                    (ns as f64 / 1e9 - dts).abs() < 0.001,
                    "{name}: {ns} ns vs {dts} s"
                );
            }
        }
        assert!(ours.end <= std::fs::metadata(&path).unwrap().len());
    }
}
