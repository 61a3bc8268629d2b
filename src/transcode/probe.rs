//! Learns a source's duration before any transcoding, with GStreamer's Discoverer (no full decode).

use std::time::Duration;

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
    /// `None` when the container does not say (live-like or unindexed sources).
    pub duration: Option<Duration>,
    /// Media time of the first audio or video sample (the plan counts segments from it).
    pub origin: Duration,
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
    let path = match source {
        Source::Demo => {
            return Ok(Probe {
                duration: Some(DEMO_DURATION),
                origin: Duration::ZERO,
            });
        }
        Source::File(path) => path,
    };
    let uri = gst::glib::filename_to_uri(path, None)
        .map_err(|err| TranscodeError::Failed(err.to_string()))?;
    let timeout =
        gst::ClockTime::from_nseconds(u64::try_from(PROBE_TIMEOUT.as_nanos()).unwrap_or(u64::MAX));
    let discoverer = gst_pbutils::Discoverer::new(timeout)
        .map_err(|_| TranscodeError::MissingElement("discoverer"))?;
    let info = discoverer
        .discover_uri(&uri)
        .map_err(|err| classify(&err))?;
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
    let duration = info
        .duration()
        .filter(|d| d.nseconds() > 0)
        .map(|d| Duration::from_nanos(d.nseconds()));
    Ok(Probe {
        duration,
        origin: Duration::ZERO,
    })
}
