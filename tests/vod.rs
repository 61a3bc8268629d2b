//! End-to-end: a long file as a complete VOD playlist; seeks served at once, timestamps that splice, bounded memory.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use support::media::{LONG, LONG_SECONDS, long_root};
use support::{Server, hls, http, pts_delta, tools, ts};

const SEGMENT: f64 = 2.0;
/// Arguments that keep the long clip quick to transcode on a small machine.
const FAST: [&str; 4] = ["--preset", "ultrafast", "--max-height", "240"];

fn start(extra: &[&str]) -> Server {
    let mut args = FAST.to_vec();
    args.extend_from_slice(extra);
    Server::start(long_root(), &args)
}

fn playlist_url(server: &Server) -> String {
    server.url(&format!("/hls/{LONG}/index.m3u8"))
}

fn segment(server: &Server, k: u64) -> (Vec<u8>, u64) {
    let bytes = ts::fetch_segment(&server.url(&format!("/hls/{LONG}/{k}.ts")))
        .unwrap_or_else(|e| panic!("segment {k}: {e}"));
    let info = ts::check_segment(&bytes, true).unwrap_or_else(|e| panic!("segment {k}: {e}"));
    let pts = info
        .first_pts
        .unwrap_or_else(|| panic!("segment {k} has no PTS"));
    (bytes, pts)
}

/// A figure of the long clip's stream from `/metrics`.
fn metric(server: &Server, name: &str) -> u64 {
    let text = http::get(&server.url("/metrics")).text();
    let prefix = format!("{name}{{stream=\"{LONG}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn the_whole_file_is_listed_at_once() {
    let server = start(&[]);
    let started = Instant::now();
    let (playlist, _) =
        hls::poll_until_ended(&playlist_url(&server), "VOD", Duration::from_secs(30))
            .expect("VOD playlist");
    eprintln!("first VOD playlist after {:?}", started.elapsed());
    let source = tools::probe_duration(&long_root().join(LONG));
    let planned = (source / SEGMENT).round() as usize;
    assert!(
        playlist.segments.len().abs_diff(planned) <= 1,
        "{} segments for {source} s",
        playlist.segments.len()
    );
    support::check_duration("the sum of #EXTINF", playlist.total_duration(), source)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_segment_near_the_end_comes_without_transcoding_the_middle() {
    let server = start(&[]);
    hls::fetch(&playlist_url(&server)).expect("playlist");
    let k = u64::from(LONG_SECONDS) * 9 / 10 / 2;
    let started = Instant::now();
    let (_, pts_k) = segment(&server, k);
    eprintln!("segment {k} (cold seek) after {:?}", started.elapsed());
    let made = metric(&server, "hlss_stream_segments_made_total");
    assert!(
        made < 30,
        "{made} segments were made to answer segment {k} of {}: the middle was transcoded",
        LONG_SECONDS / 2
    );
    // Its timestamps are those a run from the start gives it: media time plus a constant.
    let (_, pts_0) = segment(&server, 0);
    let start = pts_delta(pts_0, pts_k);
    assert!(
        (start - k as f64 * SEGMENT).abs() < 0.1,
        "segment {k} starts {start:.3} s after segment 0"
    );
}

#[test]
fn timestamps_are_the_same_across_a_restart() {
    let k = 100;
    let first = {
        let server = start(&[]);
        hls::fetch(&playlist_url(&server)).expect("playlist");
        segment(&server, k).1
    };
    let server = start(&[]);
    hls::fetch(&playlist_url(&server)).expect("playlist");
    let (_, again) = segment(&server, k);
    assert_eq!(
        first, again,
        "segment {k} has a different first PTS in another run"
    );
}

#[test]
fn ffmpeg_seeks_to_80_percent() {
    let server = start(&[]);
    let at = f64::from(LONG_SECONDS) * 0.8;
    let run = tools::run_with_timeout(
        std::process::Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-ss",
            &format!("{at}"),
            "-i",
            &playlist_url(&server),
            "-t",
            "4",
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(60),
    );
    assert!(run.success(), "ffmpeg -ss {at}: {}", run.describe());
    let made = metric(&server, "hlss_stream_segments_made_total");
    assert!(
        made < 40,
        "{made} segments made for a seek to {at} s: the seek transcoded from the start"
    );
}

#[test]
fn gstreamer_seeks_on_the_hls_url() {
    let server = start(&[]);
    gst::init().expect("GStreamer");
    let playbin = gst::ElementFactory::make("playbin3")
        .property("uri", playlist_url(&server))
        .property(
            "video-sink",
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
                .expect("fakesink"),
        )
        .property(
            "audio-sink",
            gst::ElementFactory::make("fakesink")
                .property("sync", false)
                .build()
                .expect("fakesink"),
        )
        .build()
        .expect("playbin3");
    let bus = playbin.bus().expect("bus");
    let wait_for = |what: gst::MessageType, timeout: Duration| -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(err) => {
                    return Err(format!("{} ({:?})", err.error(), err.debug()));
                }
                _ if msg.type_() == what => return Ok(()),
                _ => {}
            }
        }
        Err(format!("no {what:?} within {timeout:?}"))
    };
    playbin.set_state(gst::State::Paused).expect("PAUSED");
    wait_for(gst::MessageType::AsyncDone, Duration::from_secs(30)).expect("preroll");
    let target = gst::ClockTime::from_seconds(u64::from(LONG_SECONDS) * 8 / 10);
    playbin
        .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, target)
        .expect("seek accepted");
    wait_for(gst::MessageType::AsyncDone, Duration::from_secs(30)).expect("seek completes");
    playbin.set_state(gst::State::Playing).expect("PLAYING");
    // The rest of the file plays to the end from there.
    let played = wait_for(gst::MessageType::Eos, Duration::from_secs(120));
    let position = playbin.query_position::<gst::ClockTime>();
    playbin.set_state(gst::State::Null).expect("NULL");
    played.expect("plays to the end after the seek");
    let position = position.expect("position");
    assert!(
        position >= target,
        "ended at {position}, before the seek target {target}"
    );
    let made = metric(&server, "hlss_stream_segments_made_total");
    assert!(
        made < u64::from(LONG_SECONDS) / 2 * 4 / 10,
        "{made} segments made: the seek did not skip the middle"
    );
}

#[test]
fn a_full_play_stays_within_the_memory_budget() {
    /// The whole clip is about 240 MiB of segments: fifteen budgets' worth.
    const BUDGET_MIB: u64 = 16;
    let server = start(&["--stream-memory", &BUDGET_MIB.to_string()]);
    let peak = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let run =
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(reply) = http::try_get(&server.url("/metrics")) {
                        let prefix = format!("hlss_stream_bytes_held{{stream=\"{LONG}\"}} ");
                        if let Some(v) = reply.text().lines().find_map(|l| {
                            l.strip_prefix(&prefix).and_then(|v| v.trim().parse().ok())
                        }) {
                            peak.fetch_max(v, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            // A generous bound: a loaded 2-core CI machine transcodes this in well under a minute.
            let run = tools::run_with_timeout(
                std::process::Command::new("ffmpeg").args([
                    "-nostdin",
                    "-v",
                    "error",
                    "-progress",
                    "pipe:1",
                    "-i",
                    &playlist_url(&server),
                    "-f",
                    "null",
                    "-",
                ]),
                Duration::from_secs(300),
            );
            done.store(true, Ordering::Relaxed);
            run
        });
    assert!(run.success(), "ffmpeg: {}", run.describe());
    let played = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("out_time_us="))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .next_back()
        .expect("ffmpeg reported its progress")
        / 1e6;
    let source = tools::probe_duration(&long_root().join(LONG));
    support::check_duration("decoded duration", played, source).unwrap_or_else(|e| panic!("{e}"));
    let peak = peak.load(Ordering::Relaxed);
    let made = metric(&server, "hlss_stream_segments_made_total");
    eprintln!("peak {peak} bytes held, {made} segments made");
    assert!(peak > 0, "never saw the stream hold anything");
    assert!(
        peak <= BUDGET_MIB << 20,
        "the stream held {peak} bytes, over its {BUDGET_MIB} MiB budget"
    );
    let held = metric(&server, "hlss_stream_bytes_held");
    assert!(
        held * 4 < made * 750_000,
        "the stream still holds {held} bytes of the {made} segments it made: nothing was evicted"
    );
}
