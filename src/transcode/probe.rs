//! Learns what a source holds (codecs, a duration) and where its audio and video lie, before any transcoding.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gst_pbutils::prelude::*;

use super::extent;
use super::{TranscodeError, classify};
use crate::library::Source;

/// Longest a probe may take; a file that cannot be typed and prerolled by then is refused.
/// Below 5 s so that a bad file is refused within 5 s even when its error is lost: decodebin
/// can drop an error a demuxer posts while it is still being plugged (seen with truncated MP4
/// heads on GStreamer 1.22), and then only this timeout ends the probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Length of the built-in demo.
pub const DEMO_DURATION: Duration = Duration::from_secs(60);

/// What the probe found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// From `origin` to the end of the last audio or video stream (subtitle and data tracks do
    /// not count). `None` when the container does not say (live-like or unindexed sources).
    pub duration: Option<Duration>,
    /// Media time (GStreamer's stream time, the space seeks use) of the first decoded audio or
    /// video sample: the plan counts segments from it.
    pub origin: Duration,
    /// The first video and audio streams' codecs (the ones a run plays).
    pub codecs: Codecs,
}

/// What the direct-stream rules need to know of a source's codecs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Codecs {
    pub video: Option<VideoCodec>,
    pub audio: Option<AudioCodec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoCodec {
    /// The caps' media type, such as `video/x-h264`.
    pub media_type: String,
    pub bit_depth: Option<u32>,
    /// Such as `4:2:0`.
    pub chroma: Option<String>,
    pub interlaced: bool,
    /// An orientation tag asks for the picture to be turned or flipped.
    pub oriented: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioCodec {
    /// The caps' media type, such as `audio/mpeg`.
    pub media_type: String,
    /// MPEG-4 AAC, low complexity profile: what HLS players take as it is.
    pub aac_lc: bool,
}

/// Probes `source`. Blocking: call off the async runtime. A panic inside becomes an error, so
/// the stream waiting for this answer gets one.
pub fn probe(source: &Source) -> Result<Probe, TranscodeError> {
    super::guard::guard("the probe", || discover(source)).unwrap_or_else(|| {
        Err(TranscodeError::Failed(
            "internal error while probing".into(),
        ))
    })
}

fn discover(source: &Source) -> Result<Probe, TranscodeError> {
    let started = Instant::now();
    let deadline = started + PROBE_TIMEOUT;
    let path = match source {
        Source::Demo => {
            return Ok(Probe {
                duration: Some(DEMO_DURATION),
                origin: Duration::ZERO,
                codecs: Codecs::default(),
            });
        }
        Source::File(path) => path,
    };
    let uri = gst::glib::filename_to_uri(path, None)
        .map_err(|err| TranscodeError::Failed(err.to_string()))?;
    // The Discoverer (what the streams are, whether they decode) and the extent (where the
    // audio and video lie) side by side: each is a pipeline of its own, and a cold playlist
    // waits for both.
    let streams = OnceLock::new();
    let (info, extent) = std::thread::scope(|scope| {
        let extent = scope.spawn(|| {
            super::guard::guard("the probe's extent", || {
                extent::measure(&uri, path, &streams, deadline)
            })
        });
        let info = discoverer(&uri);
        let _ = streams.set(info.as_ref().map_or(0, audio_video_streams));
        let extent = extent.join().ok().flatten();
        (info, extent)
    });
    let info = info?;
    let extent = match extent {
        Some(Ok(extent)) => extent,
        // Should that fail (damage near the end, too slow), the container's figures still
        // play, with the old flaws (a grid from 0, subtitle tails counted).
        Some(Err(err)) => {
            tracing::warn!("cannot measure the audio/video extent of {uri}: {err}");
            extent::Extent::default()
        }
        None => extent::Extent::default(),
    };
    tracing::debug!("probed {uri} in {:.0?}", started.elapsed());
    let origin = extent.start.unwrap_or(gst::ClockTime::ZERO);
    let end = extent.end.or_else(|| info.duration());
    let duration = end
        .map(|end| end.saturating_sub(origin))
        .filter(|d| d.nseconds() > 0)
        .map(|d| Duration::from_nanos(d.nseconds()));
    Ok(Probe {
        duration,
        origin: Duration::from_nanos(origin.nseconds()),
        codecs: codecs(&info),
    })
}

/// How many audio and video streams the Discoverer found, counted as the end search counts them
/// (a cover picture, image/jpeg, is not video).
fn audio_video_streams(info: &gst_pbutils::DiscovererInfo) -> usize {
    let video = info.video_streams().into_iter().map(|s| s.caps());
    let audio = info.audio_streams().into_iter().map(|s| s.caps());
    video
        .chain(audio)
        .filter(|caps| caps.as_ref().is_some_and(|c| extent::is_audio_video(c)))
        .count()
}

/// What the Discoverer finds in `uri`: media it can decode, with audio or video, or why not.
fn discoverer(uri: &str) -> Result<gst_pbutils::DiscovererInfo, TranscodeError> {
    let timeout =
        gst::ClockTime::from_nseconds(u64::try_from(PROBE_TIMEOUT.as_nanos()).unwrap_or(u64::MAX));
    let discoverer = gst_pbutils::Discoverer::new(timeout)
        .map_err(|_| TranscodeError::MissingElement("discoverer"))?;
    let info = discoverer.discover_uri(uri).map_err(|err| classify(&err))?;
    match info.result() {
        gst_pbutils::DiscovererResult::Ok => {}
        gst_pbutils::DiscovererResult::MissingPlugins => {
            let missing = info.missing_elements_installer_details().join(", ");
            return Err(TranscodeError::NotMedia(format!(
                "no GStreamer plugin can decode it ({missing})"
            )));
        }
        gst_pbutils::DiscovererResult::Timeout => {
            return Err(TranscodeError::NotMedia(format!(
                "no playable audio or video found within {} s (truncated or damaged?)",
                PROBE_TIMEOUT.as_secs()
            )));
        }
        other => return Err(TranscodeError::Failed(format!("probe failed: {other:?}"))),
    }
    if info.video_streams().is_empty() && info.audio_streams().is_empty() {
        return Err(TranscodeError::NotMedia(
            "the file has no audio or video stream".into(),
        ));
    }
    Ok(info)
}

/// The codecs of the first video and audio streams the Discoverer found.
fn codecs(info: &gst_pbutils::DiscovererInfo) -> Codecs {
    let video = info.video_streams().first().and_then(|stream| {
        let caps = stream.caps()?;
        let s = caps.structure(0)?;
        let oriented = stream
            .tags()
            .and_then(|tags| {
                tags.get::<gst::tags::ImageOrientation>()
                    .map(|o| o.get().to_owned())
            })
            .is_some_and(|orientation| orientation != "rotate-0");
        let interlaced = stream.is_interlaced()
            || s.get::<&str>("interlace-mode")
                .is_ok_and(|mode| mode != "progressive");
        Some(VideoCodec {
            media_type: s.name().to_string(),
            bit_depth: s.get::<u32>("bit-depth-luma").ok(),
            chroma: s.get::<String>("chroma-format").ok(),
            interlaced,
            oriented,
        })
    });
    let audio = info.audio_streams().first().and_then(|stream| {
        let caps = stream.caps()?;
        let s = caps.structure(0)?;
        let aac_lc = s.name() == "audio/mpeg"
            && s.get::<i32>("mpegversion").is_ok_and(|v| v == 4)
            && s.get::<&str>("profile").is_ok_and(|p| p == "lc");
        Some(AudioCodec {
            media_type: s.name().to_string(),
            aac_lc,
        })
    });
    Codecs { video, audio }
}
