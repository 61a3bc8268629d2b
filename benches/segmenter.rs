//! Segmenter throughput on a large real TS stream (GStreamer 720p), side by side with memcpy of the same bytes.
//!
//! `cargo bench --bench segmenter` (or `make bench`). The stream is made at bench time: 10 s of
//! 720p H.264 at 20 Mb/s plus AAC from gst-launch-1.0, repeated in memory with shifted PTS up to
//! `HLSS_BENCH_MB` (default 200) MB. Without GStreamer the committed 160x120 clip is repeated.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use hlss::segmenter::{Cuts, Segmenter, synth};

const PACKET: usize = 188;
const PTS_MASK: u64 = (1 << 33) - 1;
/// Segment target, and the keyframe interval of the generated stream (50 frames at 25 fps).
const TARGET: Duration = Duration::from_secs(2);
/// Size of the pushes the server's transcoder makes when mpegtsmux hands over big buffers.
const BIG_CHUNK: usize = 64 << 10;
/// Stream size when `HLSS_BENCH_MB` is not set.
const DEFAULT_MB: usize = 200;
/// Runs per figure in the closing summary (the best one counts, as for memcpy).
const SUMMARY_RUNS: usize = 5;
/// The goals: absolute throughput and fraction of memcpy.
const GOAL_MB_S: f64 = 2000.0;
const GOAL_RATIO: f64 = 0.25;

/// One clip from GStreamer, or `None` if gst-launch-1.0 or a plugin is missing.
fn gstreamer_clip(dir: &Path) -> Option<Vec<u8>> {
    let path = dir.join("bench.ts");
    let desc = format!(
        "mpegtsmux name=mux ! filesink location={} \
         videotestsrc num-buffers=250 pattern=snow ! video/x-raw,width=1280,height=720,framerate=25/1 \
         ! x264enc speed-preset=ultrafast tune=zerolatency bitrate=20000 key-int-max=50 \
         ! h264parse config-interval=-1 ! mux. \
         audiotestsrc num-buffers=469 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 \
         ! avenc_aac bitrate=128000 ! aacparse ! mux.",
        path.display()
    );
    let out = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split_whitespace())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "gst-launch-1.0 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    std::fs::read(path).ok()
}

/// The clip repeated to `bytes`, each copy's PTS/DTS shifted to follow on from the previous one,
/// so the segmenter sees one continuous stream.
fn repeat(clip: &[u8], bytes: usize) -> Vec<u8> {
    let clip = &clip[..clip.len() / PACKET * PACKET];
    let (mut lo, mut hi) = (u64::MAX, 0);
    synth::rewrite_pts(&mut clip.to_vec(), |t| {
        lo = lo.min(t);
        hi = hi.max(t);
        t
    });
    // One video frame past the last PTS.
    let period = hi.saturating_sub(lo) + 3600;
    let mut out = Vec::with_capacity(bytes + clip.len());
    let mut shift = 0;
    while out.len() < bytes {
        let at = out.len();
        out.extend_from_slice(clip);
        synth::rewrite_pts(&mut out[at..], |t| (t + shift) & PTS_MASK);
        shift += period;
    }
    out
}

fn stream() -> Vec<u8> {
    let mb = std::env::var("HLSS_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MB);
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let clip = gstreamer_clip(dir.path()).unwrap_or_else(|| {
        eprintln!("GStreamer unavailable: repeating the committed 160x120 clip instead");
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/segmenter");
        std::fs::read(corpus.join("av_h264_aac.ts")).expect("corpus clip")
    });
    let data = repeat(&clip, mb << 20);
    eprintln!(
        "stream: {:.1} MB ({:.1} MB clip repeated) in {:.1} s",
        mb_of(data.len()),
        mb_of(clip.len()),
        started.elapsed().as_secs_f64()
    );
    data
}

fn mb_of(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

/// Segments the whole stream in pushes of `chunk` bytes, dropping segments as they come (as the
/// server hands them on); returns the bytes of segments made.
fn segment_all(data: &[u8], chunk: usize) -> usize {
    segment_all_with(Cuts::KeyframesOrTime, data, chunk)
}

/// [`segment_all`] with a segmenter that cuts as `cuts` says (keyframes-only also renumbers
/// continuity counters).
fn segment_all_with(cuts: Cuts, data: &[u8], chunk: usize) -> usize {
    let mut s = Segmenter::with_cuts(TARGET, cuts);
    let mut out = Vec::new();
    let mut made = 0;
    for piece in data.chunks(chunk) {
        s.push(piece, &mut out);
        made += out.iter().map(|seg| seg.bytes.len()).sum::<usize>();
        out.clear();
    }
    made + s.finish().map_or(0, |seg| seg.bytes.len())
}

fn memcpy(data: &[u8], dst: &mut [u8]) {
    dst.copy_from_slice(data);
    black_box(dst);
}

/// Best throughput of `SUMMARY_RUNS` runs of `f` over `bytes`, in MB/s.
fn best_mb_s(bytes: usize, mut f: impl FnMut()) -> f64 {
    (0..SUMMARY_RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            mb_of(bytes) / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn main() {
    let data = stream();
    let mut dst = vec![1u8; data.len()];
    let made = segment_all(&data, BIG_CHUNK);
    assert!(made > data.len() / 2, "the stream was hardly segmented");

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("segmenter");
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function("segment (64 KiB pushes)", |b| {
            b.iter(|| segment_all(black_box(&data), BIG_CHUNK))
        });
        g.bench_function("segment (188-byte pushes)", |b| {
            b.iter(|| segment_all(black_box(&data), PACKET))
        });
        g.bench_function("memcpy", |b| b.iter(|| memcpy(black_box(&data), &mut dst)));
        g.finish();
    }
    c.final_summary();

    // The figures side by side, measured here in the same run (best of SUMMARY_RUNS each).
    let copy = best_mb_s(data.len(), || memcpy(black_box(&data), &mut dst));
    println!(
        "\n{:<28} {:>10} {:>10}",
        "segmenter summary", "MB/s", "of memcpy"
    );
    println!("{:<28} {copy:>10.0} {:>9.0}%", "memcpy", 100.0);
    let mut ok = true;
    for (name, cuts, chunk) in [
        ("segment, 64 KiB pushes", Cuts::KeyframesOrTime, BIG_CHUNK),
        ("segment, 188-byte pushes", Cuts::KeyframesOrTime, PACKET),
        ("keyframes only, 64 KiB", Cuts::KeyframesOnly, BIG_CHUNK),
    ] {
        let seg = best_mb_s(data.len(), || {
            black_box(segment_all_with(cuts, black_box(&data), chunk));
        });
        println!("{name:<28} {seg:>10.0} {:>9.0}%", 100.0 * seg / copy);
        ok &= seg >= GOAL_MB_S && seg >= GOAL_RATIO * copy;
    }
    println!(
        "goal: at least {GOAL_MB_S:.0} MB/s and {:.0}% of memcpy: {}",
        100.0 * GOAL_RATIO,
        if ok { "met" } else { "NOT met" }
    );
}
