//! Shared helpers for the end-to-end tests: server process, HTTP, media fixtures, HLS/TS checks, clients.
// Every test binary compiles this module but uses a different subset of it.
#![allow(dead_code)]

pub mod hls;
pub mod http;
pub mod listing;
pub mod media;
pub mod real_media;
pub mod server;
pub mod timeline_media;
pub mod tools;
pub mod tracks_media;
pub mod ts;

use std::time::Duration;

pub use media::{Clip, media_root};

/// Longest one test binary may run (the slowest takes about 2 minutes here). cargo's harness has
/// no per-test time limit: a hung test (GStreamer has deadlocked in tests before) would hold CI
/// until its own limit, with no word on why.
const BINARY_WATCHDOG: Duration = Duration::from_secs(15 * 60);

/// Arms, once per test binary, a watchdog that aborts the binary past [`BINARY_WATCHDOG`],
/// saying why (cargo's "has been running for over 60 seconds" lines above name the test).
pub fn watchdog() {
    static ARMED: std::sync::Once = std::sync::Once::new();
    ARMED.call_once(|| {
        // HLSS_TEST_WATCHDOG_SECS sets another limit (a very slow machine).
        let limit = std::env::var("HLSS_TEST_WATCHDOG_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(BINARY_WATCHDOG, Duration::from_secs);
        let spawned = std::thread::Builder::new()
            .name("test-watchdog".into())
            .spawn(move || {
                std::thread::sleep(limit);
                // Straight to the stream: eprintln! from a test's thread is captured, and the
                // capture dies with the process.
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!(
                        "test watchdog: this test binary has run for {} s; a test is hung (the \
                         'has been running for over 60 seconds' lines name it). Aborting.\n",
                        limit.as_secs()
                    )
                    .as_bytes(),
                );
                std::process::abort();
            });
        // Without a thread the tests still run, only unguarded.
        drop(spawned);
    });
}
pub use server::Server;

/// How far a measured duration (playlist sum, decoded by a client) may stray from the source's.
pub const DURATION_TOLERANCE: f64 = 0.5;

/// Bound on waiting for a stream to be transcoded to the end (`#EXT-X-ENDLIST`).
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// How far a VOD segment's `#EXTINF` may stray from its real span, and its first PTS from `k * T`.
pub const SPAN_TOLERANCE: f64 = 0.1;

/// Which playlist the server was started to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The default: complete at once, segments made on demand.
    Vod,
    /// `--playlist event`: grows while the transcode runs.
    Event,
}

impl Kind {
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Vod => "VOD",
            Kind::Event => "EVENT",
        }
    }
}

/// Seconds between two 33-bit PTS values.
pub fn pts_delta(from: u64, to: u64) -> f64 {
    (to.wrapping_sub(from) & ((1 << 33) - 1)) as f64 / 90_000.0
}

/// Plays one file through the server the way a player would, checking every step against RFC 8216 and
/// the server's contract: playlist growth until `#EXT-X-ENDLIST`, every segment's TS structure, the
/// concatenated segments, and full playback with GStreamer and ffmpeg within [`DURATION_TOLERANCE`].
///
/// `segment_duration` is the value the server was started with (2 s when not given). Returns every
/// distinct version of the playlist seen while polling it, for tests about its growth.
pub fn check_stream(
    server: &Server,
    playlist_href: &str,
    clip: &Clip,
    segment_duration: f64,
    kind: Kind,
) -> Vec<hls::Playlist> {
    let source = media_root().join(clip.rel);
    check_stream_file(server, playlist_href, &source, clip, segment_duration, kind).versions
}

/// What [`check_stream_file`] saw: every distinct version of the playlist while polling it, and
/// the final playlist's segments in order.
pub struct Played {
    pub versions: Vec<hls::Playlist>,
    pub segments: Vec<Vec<u8>>,
}

/// [`check_stream`] for a `source` file anywhere (`clip.rel` only names it in messages).
pub fn check_stream_file(
    server: &Server,
    playlist_href: &str,
    source: &std::path::Path,
    clip: &Clip,
    segment_duration: f64,
    kind: Kind,
) -> Played {
    let source_duration = tools::probe_duration(source);
    let playlist_url = server.url(playlist_href);
    let ctx = |what: &str, e: String| format!("{what} for {} ({playlist_url}): {e}", clip.rel);

    let (playlist, versions) = hls::poll_until_ended(&playlist_url, kind.tag(), STREAM_TIMEOUT)
        .unwrap_or_else(|e| panic!("{}", ctx("playlist", e)));
    hls::check_final(&playlist, source_duration, segment_duration)
        .unwrap_or_else(|e| panic!("{}", ctx("final playlist", e)));

    let base = playlist_url
        .strip_suffix("index.m3u8")
        .expect("playlist URL ends with index.m3u8");
    let mut segments = Vec::with_capacity(playlist.segments.len());
    let mut first_pts = Vec::with_capacity(playlist.segments.len());
    for segment in &playlist.segments {
        let url = format!("{base}{}", segment.uri);
        let bytes = ts::fetch_segment(&url).unwrap_or_else(|e| panic!("{}", ctx(&url, e)));
        let info = ts::check_segment(&bytes, clip.video)
            .unwrap_or_else(|e| panic!("{}", ctx(&format!("segment {url}"), e)));
        first_pts.push(info.first_pts);
        segments.push(bytes);
    }
    if kind == Kind::Vod {
        check_vod_timing(&playlist, &first_pts)
            .unwrap_or_else(|e| panic!("{}", ctx("VOD timing", e)));
    }
    tools::check_concatenated(&segments, clip.video, clip.audio)
        .unwrap_or_else(|e| panic!("{}", ctx("concatenated segments", e)));

    // GStreamer's client once decoded a direct clip 0.7 s short under a loaded full run (every
    // segment answered 200; the same bytes played whole in every other run): a second play
    // must then come out whole. A stream that really falls short fails both.
    let gst_checked = || {
        let played = tools::gst_play(&playlist_url)?;
        check_gst(&played, clip, source_duration).map(|()| played)
    };
    let gst = gst_checked()
        .or_else(|first| {
            eprintln!("GStreamer's HLS client: {first}; playing once more");
            gst_checked()
        })
        .unwrap_or_else(|e| panic!("{}", ctx("GStreamer", e)));

    let ff = tools::ffmpeg_play(&playlist_url).unwrap_or_else(|e| panic!("{}", ctx("ffmpeg", e)));
    let ff_source = tools::ffmpeg_play(&source.to_string_lossy())
        .unwrap_or_else(|e| panic!("{}", ctx("ffmpeg on the source file", e)));
    check_ffmpeg(&ff, &ff_source, source_duration)
        .unwrap_or_else(|e| panic!("{}", ctx("ffmpeg", e)));

    // Shown with --nocapture: how close each measure came, to see margins shrink before they fail.
    eprintln!(
        "{}: {} segments, target {} s, segment counts seen while polling {:?}; source \
         {source_duration:.3} s, playlist {:.3} s, GStreamer {gst:?}, ffmpeg {ff:?} (source file: \
         {ff_source:?})",
        clip.rel,
        playlist.segments.len(),
        playlist.target_duration,
        versions
            .iter()
            .map(|v| v.segments.len())
            .collect::<Vec<_>>(),
        playlist.total_duration(),
    );
    Played { versions, segments }
}

/// A VOD playlist promises where each segment lies: segment `k`'s first PTS must come the sum of
/// the `#EXTINF`s before it after segment 0's (`k*T` on an even plan; a direct stream's segments
/// run from keyframe to keyframe), and each `#EXTINF` must match the span to the next segment's
/// first PTS.
pub fn check_vod_timing(playlist: &hls::Playlist, first_pts: &[Option<u64>]) -> Result<(), String> {
    let pts: Vec<u64> = first_pts
        .iter()
        .enumerate()
        .map(|(k, p)| p.ok_or(format!("segment {k} has no PTS")))
        .collect::<Result<_, _>>()?;
    let origin = pts[0];
    let mut planned = 0.0;
    for (k, segment) in playlist.segments.iter().enumerate() {
        let start = pts_delta(origin, pts[k]);
        if (start - planned).abs() > SPAN_TOLERANCE {
            return Err(format!(
                "segment {k} starts {start:.3} s after segment 0, planned {planned:.3} s"
            ));
        }
        if let Some(next) = pts.get(k + 1) {
            let span = pts_delta(pts[k], *next);
            if (span - segment.duration).abs() > SPAN_TOLERANCE {
                return Err(format!(
                    "segment {k}: #EXTINF:{} but it spans {span:.3} s",
                    segment.duration_text
                ));
            }
        }
        planned += segment.duration;
    }
    Ok(())
}

/// GStreamer must have decoded exactly the kinds of streams the source has, each ending about as
/// long as the source after the first decoded sample of any kind (audio that starts after the
/// picture still ends with it). Gaps inside are left to ffmpeg's frame count (see [`tools::Track`]).
pub fn check_gst(played: &tools::GstPlayed, clip: &Clip, source: f64) -> Result<(), String> {
    let first = [played.video, played.audio]
        .iter()
        .flatten()
        .map(|t| t.start)
        .fold(f64::INFINITY, f64::min);
    for (kind, expected, track) in [
        ("video", clip.video, played.video),
        ("audio", clip.audio, played.audio),
    ] {
        match (expected, track) {
            (true, Some(t)) => check_duration(&format!("{kind} end"), t.end - first, source)?,
            (true, None) => return Err(format!("no {kind} reached the sink")),
            (false, Some(t)) => {
                return Err(format!("{kind} from a file without {kind}: {t:?}"));
            }
            (false, None) => {}
        }
    }
    Ok(())
}

/// ffmpeg's decoded duration must match the source's, and it must have decoded about as many video
/// frames from the stream as from the source file itself.
pub fn check_ffmpeg(
    stream: &tools::FfmpegPlayed,
    source: &tools::FfmpegPlayed,
    source_duration: f64,
) -> Result<(), String> {
    check_duration("decoded duration", stream.duration, source_duration)?;
    let fps = source.video_frames as f64 / source_duration;
    let allowed = (fps * DURATION_TOLERANCE).ceil() as u64;
    if stream.video_frames.abs_diff(source.video_frames) > allowed {
        return Err(format!(
            "decoded {} video frames from the stream but {} from the source (tolerance {allowed})",
            stream.video_frames, source.video_frames
        ));
    }
    Ok(())
}

/// Compares a measured duration with the source's.
pub fn check_duration(what: &str, measured: f64, source: f64) -> Result<(), String> {
    if (measured - source).abs() <= DURATION_TOLERANCE {
        Ok(())
    } else {
        Err(format!(
            "{what} is {measured:.3} s but the source lasts {source:.3} s (tolerance {DURATION_TOLERANCE} s)"
        ))
    }
}
