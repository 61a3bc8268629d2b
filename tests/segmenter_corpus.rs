//! Segmenter regression corpus replay, and properties checked on real GStreamer (x264 + mpegtsmux) output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hlss::segmenter::check::{self, chunk_lens, raw_case, run_split, same_segments, stream_case};
use hlss::segmenter::{Segment, synth};
use proptest::prelude::*;

const PACKET: usize = 188;
/// Budget for the committed corpus (the issue asks for less than 500 KB).
const CORPUS_MAX_BYTES: u64 = 500 << 10;
/// Targets every corpus stream is replayed with: degenerate, shorter than a GOP, a GOP, longer.
const REPLAY_TARGETS_MS: [u64; 4] = [0, 500, 1000, 2000];
/// Fixed chunkings of the replay (plus pseudo-random ones): bytes, odd sizes, packets, pages.
const REPLAY_CHUNKS: [usize; 5] = [1, 7, PACKET - 1, PACKET, 4096];
/// Folder of the raw fuzz target's inputs (three config bytes, then the stream).
const FUZZ_RAW_DIR: &str = "fuzz-raw";
/// PTS ticks per second.
const HZ: u64 = 90_000;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/segmenter")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(corpus_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every file of the corpus (relative names), README excluded.
fn corpus_files() -> Vec<String> {
    let mut files = Vec::new();
    let mut dirs = vec![corpus_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n != "README.md") {
                let rel = path.strip_prefix(corpus_dir()).unwrap();
                files.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn corpus_replays_with_invariants_and_any_chunking() {
    let files = corpus_files();
    assert!(files.iter().filter(|f| f.ends_with(".ts")).count() >= 8);
    for name in &files {
        let data = read(name);
        if name.starts_with(FUZZ_RAW_DIR) {
            raw_case(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            continue;
        }
        for target in REPLAY_TARGETS_MS.map(ms) {
            let mut chunkings: Vec<Vec<usize>> = REPLAY_CHUNKS
                .iter()
                .map(|&n| vec![n; data.len().div_ceil(n)])
                .collect();
            chunkings.extend((1..4).map(|seed| chunk_lens(seed, data.len())));
            for chunks in &chunkings {
                stream_case(target, &data, chunks).unwrap_or_else(|e| {
                    panic!("{name} at {target:?}, chunks {:?}: {e}", &chunks[..3])
                });
            }
        }
    }
}

/// What the corpus streams must give with a 1 s target: (file, segments, all start with a keyframe).
/// The real clips are 2 s long with keyframes every 0.48 s (av: cuts at 0.96 s and 1.92 s) or 1 s.
const EXPECTED: [(&str, usize, bool); 10] = [
    ("av_h264_aac.ts", 3, true),
    ("video_bframes.ts", 2, true),
    ("audio_only.ts", 2, false),
    ("pts_wrap.ts", 3, true),
    ("pts_backwards.ts", 3, true),
    // Without keyframes the first segment starts 1.25 s (target + slack) in.
    ("no_keyframe.ts", 1, false),
    ("pmt_without_video.ts", 2, false),
    ("damaged.ts", 3, true),
    ("psi_only.ts", 0, true),
    ("keyframe_before_tables.ts", 2, true),
];

#[test]
fn corpus_streams_give_the_expected_segments() {
    let mut got = Vec::new();
    for (name, ..) in EXPECTED {
        let data = read(name);
        let (segs, _) = run_split(ms(1000), &data, []);
        check::check_segments(&data, &segs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let keyframes = segs.iter().all(|s| s.starts_with_keyframe);
        got.push((name, segs.len(), keyframes));
        let detail: Vec<_> = segs
            .iter()
            .map(|s| (s.duration.as_millis(), s.starts_with_keyframe))
            .collect();
        eprintln!("{name}: {detail:?}");
    }
    assert_eq!(got, EXPECTED);
}

#[test]
fn corpus_is_small_and_every_file_is_documented() {
    let readme = read("README.md");
    let readme = String::from_utf8_lossy(&readme);
    let mut total = 0;
    for name in corpus_files() {
        total += std::fs::metadata(corpus_dir().join(&name)).unwrap().len();
        let base = Path::new(&name).file_name().unwrap().to_string_lossy();
        assert!(
            readme.contains(&*base),
            "tests/corpus/segmenter/README.md says nothing about {name}"
        );
    }
    assert!(
        total < CORPUS_MAX_BYTES,
        "corpus is {total} bytes, over {CORPUS_MAX_BYTES}"
    );
}

/// Rewrites the handcrafted corpus files from `av_h264_aac.ts`:
/// `cargo test --test segmenter_corpus regenerate -- --ignored`.
#[test]
#[ignore = "writes into tests/corpus/segmenter"]
fn regenerate_handcrafted_corpus() {
    let clip = read("av_h264_aac.ts");
    let write = |name: &str, data: &[u8]| std::fs::write(corpus_dir().join(name), data).unwrap();
    let mask = (1u64 << 33) - 1;
    let first = first_pts(&clip);

    // PTS (and DTS) cross 2^33 one second in.
    let mut wrap = clip.clone();
    let shift = (1 << 33) - HZ - first;
    synth::rewrite_pts(&mut wrap, |t| t.wrapping_add(shift) & mask);
    write("pts_wrap.ts", &wrap);

    // Half a second back at 1 s (jitter-sized: counts as no time), then a reset to 0 at 1.5 s.
    let mut back = clip.clone();
    synth::rewrite_pts(&mut back, |t| match t.checked_sub(first) {
        Some(d) if d >= 3 * HZ / 2 => d - 3 * HZ / 2,
        Some(d) if d >= HZ => t - HZ / 2,
        _ => t,
    });
    write("pts_backwards.ts", &back);

    // No random access flag anywhere: the segmenter must cut on time alone.
    let mut nokey = clip.clone();
    for p in nokey.chunks_exact_mut(PACKET) {
        if p[3] & 0x20 != 0 && p[4] > 0 {
            p[5] &= !0x40;
        }
    }
    write("no_keyframe.ts", &nokey);

    // The PMT lists only the audio stream; the video packets go on, unlisted.
    let (pmt_pid, _) = program(&clip);
    let audio_only_pmt = synth::pmt(pmt_pid, 1, &[(0x0F, 0x42)], 0);
    let mut novideo = Vec::new();
    for p in clip.chunks_exact(PACKET) {
        novideo.extend_from_slice(if pid(p) == pmt_pid {
            &audio_only_pmt
        } else {
            p
        });
    }
    write("pmt_without_video.ts", &novideo);

    // Truncated packets, wrong sync bytes, junk between packets and flipped bits.
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut damaged = Vec::new();
    for p in clip.chunks_exact(PACKET) {
        let mut p = p.to_vec();
        match next() % 40 {
            0 => p.truncate(1 + (next() % 187) as usize),
            1 => p[0] = 0x46,
            2 => {
                let junk = [0x47, 0, 0, 0x47, 0xFF].repeat(1 + (next() % 3) as usize);
                p.splice(0..0, junk);
            }
            3 => {
                let at = (next() % 188) as usize;
                p[at] ^= 1 << (next() % 8);
            }
            _ => {}
        }
        damaged.extend_from_slice(&p);
    }
    write("damaged.ts", &damaged);

    // The start of the first keyframe arrives before any tables, then the clip's first half: the
    // same packets come twice and only the second copy may start a segment.
    let key = clip
        .chunks_exact(PACKET)
        .position(random_access)
        .expect("a keyframe");
    let mut late = clip[key * PACKET..(key + 6) * PACKET].to_vec();
    late.extend_from_slice(&clip[..clip.len() / PACKET / 2 * PACKET]);
    write("keyframe_before_tables.ts", &late);

    // Only tables: no segment can start.
    write("psi_only.ts", &clip[..2 * PACKET]);
}

/// A clip of `secs` seconds generated by GStreamer (x264enc + mpegtsmux, with AAC audio if `audio`),
/// or `None` with a message if GStreamer or a plugin is missing.
fn gstreamer_clip(dir: &Path, name: &str, secs: u32, x264: &str, audio: bool) -> Option<Vec<u8>> {
    let path = dir.join(name);
    let fps = 25;
    let mut desc = format!(
        "mpegtsmux name=mux ! filesink location={} \
         videotestsrc num-buffers={} pattern=ball ! video/x-raw,width=320,height=240,framerate={fps}/1 \
         ! x264enc speed-preset=ultrafast bitrate=400 option-string=scenecut=0 {x264} \
         ! h264parse config-interval=-1 ! mux.",
        path.display(),
        secs * fps
    );
    if audio {
        // 1024 samples per AAC frame at 48 kHz.
        desc += &format!(
            " audiotestsrc num-buffers={} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
             ! avenc_aac bitrate=64000 ! aacparse ! mux.",
            secs * 48_000 / 1024
        );
    }
    let out = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .output();
    match out {
        Ok(out) if out.status.success() => Some(std::fs::read(&path).unwrap()),
        Ok(out) => {
            eprintln!(
                "SKIPPED: gst-launch-1.0 failed (missing plugin?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: gst-launch-1.0 not runnable ({e}); `make test-deps` installs it");
            None
        }
    }
}

/// The packet's PID.
fn pid(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])
}

fn pusi(p: &[u8]) -> bool {
    p[1] & 0x40 != 0
}

fn random_access(p: &[u8]) -> bool {
    p[3] & 0x20 != 0 && p[4] > 0 && p[5] & 0x40 != 0
}

/// The packet's payload (after any adaptation field).
fn payload(p: &[u8]) -> &[u8] {
    match p[3] & 0x30 {
        0x10 => &p[4..],
        0x30 => p.get(5 + usize::from(p[4])..).unwrap_or(&[]),
        _ => &[],
    }
}

/// (PMT PID, video PID) of a clean mpegtsmux stream, read without the segmenter's parser.
fn program(ts: &[u8]) -> (u16, u16) {
    let packets: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    let pat = packets.iter().find(|p| pid(p) == 0).expect("a PAT");
    let sec = &payload(pat)[1..];
    let pmt_pid = u16::from(sec[10] & 0x1F) << 8 | u16::from(sec[11]);
    let pmt = packets.iter().find(|p| pid(p) == pmt_pid).expect("a PMT");
    let sec = &payload(pmt)[1..];
    let end = 3 + (usize::from(sec[1] & 0x0F) << 8 | usize::from(sec[2])) - 4;
    let mut at = 12 + (usize::from(sec[10] & 0x0F) << 8 | usize::from(sec[11]));
    while at + 5 <= end {
        let es_pid = u16::from(sec[at + 1] & 0x1F) << 8 | u16::from(sec[at + 2]);
        if sec[at] == 0x1B {
            return (pmt_pid, es_pid);
        }
        at += 5 + (usize::from(sec[at + 3] & 0x0F) << 8 | usize::from(sec[at + 4]));
    }
    (pmt_pid, 0)
}

fn first_pts(ts: &[u8]) -> u64 {
    let mut first = None;
    let mut probe = ts[..ts.len() / PACKET * PACKET].to_vec();
    synth::rewrite_pts(&mut probe, |t| {
        first.get_or_insert(t);
        t
    });
    first.expect("a PES with a PTS")
}

/// NAL unit types of the first video PES in `packets` (which starts with its PES start).
fn first_pes_nal_types(packets: &[&[u8]], video: u16) -> Vec<u8> {
    let mut pes = Vec::new();
    for (i, p) in packets.iter().enumerate().filter(|(_, p)| pid(p) == video) {
        if i > 0 && pusi(p) {
            break;
        }
        pes.extend_from_slice(payload(p));
    }
    let body = &pes[9 + usize::from(pes[8])..];
    body.windows(4)
        .filter(|w| w[..3] == [0, 0, 1])
        .map(|w| w[3] & 0x1F)
        .collect()
}

/// Checks the segments of a clean encoder stream: each starts with a random-access video packet
/// whose access unit holds an IDR, and the segments minus their inserted PAT/PMT are exactly the
/// input's packets from the first keyframe on, less the stream's own tables right before a cut.
fn check_real_stream(ts: &[u8], segs: &[Segment]) {
    let (pmt_pid, video) = program(ts);
    let input: Vec<&[u8]> = ts.chunks_exact(PACKET).collect();
    let is_psi = |p: &[u8]| pid(p) == 0 || pid(p) == pmt_pid;
    let mut starts = Vec::new();
    let mut from = 0;
    for seg in segs {
        let packets: Vec<&[u8]> = seg.bytes.chunks_exact(PACKET).collect();
        let first = packets[2];
        assert!(seg.starts_with_keyframe, "segment {}", seg.sequence);
        assert!(pid(first) == video && random_access(first) && pusi(first));
        let nals = first_pes_nal_types(&packets[2..], video);
        let first_vcl = nals.iter().find(|&&t| t == 1 || t == 5);
        assert_eq!(
            first_vcl,
            Some(&5),
            "segment {} NALs {nals:?}",
            seg.sequence
        );
        let at = from + input[from..].iter().position(|p| *p == first).unwrap();
        starts.push(at);
        from = at + 1;
    }
    let Some(&first_start) = starts.first() else {
        panic!("no segments");
    };
    // The stream's PSI packets directly before a cut or at the end are left out.
    let mut expected = Vec::new();
    for (i, p) in input.iter().enumerate().skip(first_start) {
        let next_other = input[i..].iter().position(|q| !is_psi(q)).map(|k| i + k);
        let elided = is_psi(p) && next_other.is_none_or(|k| starts.contains(&k));
        if !elided {
            expected.extend_from_slice(p);
        }
    }
    let body: Vec<u8> = segs
        .iter()
        .flat_map(|s| s.bytes[2 * PACKET..].iter().copied())
        .collect();
    assert!(
        body == expected,
        "segment bodies are not the input's packets"
    );
}

#[test]
fn gstreamer_output_is_cut_on_every_keyframe_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // (name, seconds, x264enc options, audio, target s): one keyframe per target in each.
    let cases = [
        (
            "zerolatency.ts",
            6,
            "tune=zerolatency key-int-max=25",
            true,
            1,
        ),
        ("bframes.ts", 8, "bframes=2 key-int-max=50", true, 2),
        ("video_only.ts", 4, "key-int-max=25", false, 1),
    ];
    for (name, secs, x264, audio, target) in cases {
        let Some(ts) = gstreamer_clip(dir.path(), name, secs, x264, audio) else {
            return;
        };
        let target = Duration::from_secs(target);
        let segs = stream_case(target, &ts, &chunk_lens(5, ts.len())).unwrap();
        let (_, video) = program(&ts);
        let keyframes = ts
            .chunks_exact(PACKET)
            .filter(|p| pid(p) == video && random_access(p))
            .count();
        assert_eq!(segs.len(), keyframes, "{name}: a segment per keyframe");
        assert_eq!(
            segs.len() as u64,
            u64::from(secs) / target.as_secs(),
            "{name}"
        );
        for seg in &segs[..segs.len() - 1] {
            assert_eq!(seg.duration, target, "{name} segment {}", seg.sequence);
        }
        check_real_stream(&ts, &segs);
    }
}

/// The committed real clips, to run properties on without GStreamer.
fn real_clips() -> Vec<Vec<u8>> {
    ["av_h264_aac.ts", "video_bframes.ts", "audio_only.ts"]
        .map(read)
        .to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any chunk boundaries give byte-identical segments on real encoder output.
    #[test]
    fn chunk_boundaries_do_not_matter(
        clip in 0usize..3,
        target_ms in 0u64..3000,
        cuts in proptest::collection::vec(0usize..60_000, 0..40),
    ) {
        let data = &real_clips()[clip];
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let lens: Vec<usize> = cuts.iter().scan(0, |prev, &c| {
            let len = c - *prev;
            *prev = c;
            Some(len)
        }).collect();
        let target = ms(target_ms);
        let (whole, _) = run_split(target, data, []);
        let (split, _) = run_split(target, data, lens);
        prop_assert!(same_segments(&whole, &split).is_ok());
        prop_assert!(check::check_segments(data, &whole).is_ok());
    }

    /// Damage anywhere in a real clip (bytes dropped, inserted or changed) keeps the invariants.
    #[test]
    fn damaged_real_clips_keep_the_invariants(
        clip in 0usize..3,
        target_ms in 0u64..3000,
        edits in proptest::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 0..30),
        seed in any::<u64>(),
    ) {
        let mut data = real_clips()[clip].clone();
        for (at, kind, byte) in edits {
            let at = at % data.len();
            match kind {
                0 => { data.remove(at); }
                1 => data.insert(at, byte),
                _ => data[at] = byte,
            }
        }
        let res = stream_case(ms(target_ms), &data, &chunk_lens(seed, data.len()));
        prop_assert!(res.is_ok(), "{}", res.unwrap_err());
    }
}
