//! A keyframe index for containers without tables (MPEG-TS/PS, AVI, FLV): one demux-only pass, no decoding, within a time budget.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;

use super::pipeline::make;
use super::timeline::stream_time;

/// The demuxers whose timestamps a scan and a direct run are known to agree on (a run sought to
/// any scanned keyframe starts on it): MPEG-TS and FLV. avidemux gives H.264 with B-frames
/// decode-order times (the scan of an AVI came out 2 s short and its joined segments did not
/// decode cleanly) and mpegpsdemux does not recognise H.264 without a stream map, so those
/// containers transcode.
const DEMUXERS: [&str; 2] = ["tsdemux", "flvdemux"];

/// Most keyframes kept (as the container index): an all-intra 24-hour 12 fps file.
pub const MAX_KEYFRAMES: usize = 1 << 20;

/// The H.264 NAL unit type of an IDR picture's slices.
const NAL_IDR: u8 = 5;
/// The NAL unit type of a non-IDR picture's slices; 2 to 4 are its data partitions.
const NAL_SLICE: u8 = 1;
const NAL_PARTITION_C: u8 = 4;

/// The keyframes of a file's first H.264 video stream, in stream time (the space seeks use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Presentation times of the IDR pictures, ascending, without duplicates.
    pub keyframes: Vec<Duration>,
    /// Where the last picture ends (the latest PTS + duration of any picture).
    pub end: Duration,
}

/// Why a scan gave no keyframes. Every kind means the same to a caller: transcode instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("GStreamer element {0} is missing")]
    MissingElement(&'static str),
    #[error("scan took over {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("the {0} container is not scanned")]
    Container(String),
    #[error("the file has no H.264 video stream")]
    NoVideo,
    #[error("the scan found no IDR picture")]
    NoKeyframe,
    #[error("over {MAX_KEYFRAMES} keyframes")]
    TooManyKeyframes,
    #[error("the scan failed: {0}")]
    Failed(String),
}

/// What the pad probe has seen so far.
#[derive(Default)]
struct Seen {
    /// A demuxer not in [`DEMUXERS`] was plugged.
    container: Option<String>,
    video: bool,
    keyframes: Vec<Duration>,
    end: Option<Duration>,
    overflow: bool,
}

/// Reads the file at `path` through its demuxer and H.264 parser as fast as the disk allows (no
/// decoding, no clock), collecting the stream time of every IDR picture; gives up after
/// `budget`. Blocking: call off the async runtime.
pub fn keyframes(path: &Path, budget: Duration) -> Result<Scan, ScanError> {
    let started = Instant::now();
    gst::init().map_err(|e| ScanError::Failed(e.to_string()))?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let pipeline = build(path, &seen)?;
    let result = run(&pipeline, started + budget, budget);
    // NULL stops the streaming threads: nothing touches `seen` after this.
    let _ = pipeline.set_state(gst::State::Null);
    let mut seen = std::mem::take(&mut *seen.lock());
    if let Some(demuxer) = seen.container {
        return Err(ScanError::Container(demuxer));
    }
    result?;
    if seen.overflow {
        return Err(ScanError::TooManyKeyframes);
    }
    if !seen.video {
        return Err(ScanError::NoVideo);
    }
    seen.keyframes.sort_unstable();
    seen.keyframes.dedup();
    let (Some(&first), Some(end)) = (seen.keyframes.first(), seen.end) else {
        return Err(ScanError::NoKeyframe);
    };
    Ok(Scan {
        keyframes: seen.keyframes,
        end: end.max(first),
    })
}

fn missing(factory: &'static str) -> impl FnOnce(super::TranscodeError) -> ScanError {
    move |_| ScanError::MissingElement(factory)
}

fn failed(err: impl std::fmt::Display) -> ScanError {
    ScanError::Failed(err.to_string())
}

/// filesrc → parsebin (demuxer and parsers) → a fakesink per stream, the first H.264 stream's
/// with the probe.
fn build(path: &Path, seen: &Arc<Mutex<Seen>>) -> Result<gst::Pipeline, ScanError> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().as_ref())
        .build()
        .map_err(|_| ScanError::MissingElement("filesrc"))?;
    let parse = make("parsebin").map_err(missing("parsebin"))?;
    pipeline.add_many([&src, &parse]).map_err(failed)?;
    src.link(&parse).map_err(failed)?;
    let on_element = seen.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        super::guard::guard("the scan's element-added", || {
            refuse_demuxer(element, &on_element)
        });
    });
    let weak = pipeline.downgrade();
    let seen = seen.clone();
    parse.connect_pad_added(move |parse, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let linked = super::guard::guard("the scan's pad-added", || {
            link_stream(&pipeline, pad, &seen)
        })
        .unwrap_or_else(|| Err(ScanError::Failed("internal error".into())));
        if let Err(err) = linked {
            gst::element_error!(parse, gst::CoreError::Negotiation, ("{}", err));
        }
    });
    Ok(pipeline)
}

/// Stops the scan if `element` is a demuxer it does not trust.
fn refuse_demuxer(element: &gst::Element, seen: &Mutex<Seen>) {
    let Some(factory) = element.factory() else {
        return;
    };
    let demuxer = factory
        .metadata("klass")
        .is_some_and(|klass| klass.contains("Demux"));
    let name = factory.name();
    if demuxer && !DEMUXERS.contains(&name.as_str()) {
        seen.lock().container = Some(name.to_string());
        gst::element_error!(
            element,
            gst::StreamError::WrongType,
            ("the {} container is not scanned", name)
        );
    }
}

fn link_stream(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    seen: &Arc<Mutex<Seen>>,
) -> Result<(), ScanError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let h264 = caps
        .structure(0)
        .is_some_and(|s| s.name() == "video/x-h264");
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|_| ScanError::MissingElement("fakesink"))?;
    let first_video = h264 && !std::mem::replace(&mut seen.lock().video, true);
    pipeline.add(&sink).map_err(failed)?;
    sink.sync_state_with_parent().map_err(failed)?;
    let head = sink
        .static_pad("sink")
        .ok_or_else(|| failed("fakesink has no sink pad"))?;
    if first_video {
        let seen = seen.clone();
        head.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            super::guard::guard("the scan probe", || on_buffer(pad, info, &seen));
            gst::PadProbeReturn::Ok
        });
    }
    pad.link(&head).map_err(failed)?;
    Ok(())
}

/// Records a picture's end and, if it is an IDR, its start, both in stream time.
fn on_buffer(pad: &gst::Pad, info: &gst::PadProbeInfo, seen: &Mutex<Seen>) {
    let Some(buffer) = info.buffer() else {
        return;
    };
    let Some(start) = buffer.pts().and_then(|pts| stream_time(pad, pts)) else {
        return;
    };
    let end = start.saturating_add(buffer.duration().unwrap_or(gst::ClockTime::ZERO));
    // h264parse marks I pictures that are not IDRs (open-GOP recovery points in broadcast
    // streams) as keyframes too; a segment must start on an IDR, so look at the slice.
    let idr = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
        && buffer
            .map_readable()
            .is_ok_and(|map| first_slice_type(map.as_slice(), framing(pad)) == Some(NAL_IDR));
    let mut seen = seen.lock();
    let end = Duration::from_nanos(end.nseconds());
    seen.end = Some(seen.end.map_or(end, |e| e.max(end)));
    if idr {
        if seen.keyframes.len() >= MAX_KEYFRAMES {
            seen.overflow = true;
        } else {
            seen.keyframes.push(Duration::from_nanos(start.nseconds()));
        }
    }
}

/// How the NAL units of a buffer are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Start codes (MPEG-TS, MPEG-PS, most AVI).
    AnnexB,
    /// A big-endian length of this many bytes before each (MP4-style `avc`, as FLV stores it).
    Length(usize),
}

/// The framing parsebin's H.264 parser chose for `pad` (it fixes the caps before exposing the
/// stream, so a capsfilter cannot change them).
fn framing(pad: &gst::Pad) -> Framing {
    let Some(caps) = pad.current_caps() else {
        return Framing::AnnexB;
    };
    let Some(s) = caps.structure(0) else {
        return Framing::AnnexB;
    };
    match s.get::<&str>("stream-format") {
        Ok("avc" | "avc3") => {
            // avcC's fifth byte holds lengthSizeMinusOne in its low two bits.
            let size = s
                .get::<gst::Buffer>("codec_data")
                .ok()
                .and_then(|b| b.map_readable().ok().and_then(|m| m.get(4).copied()))
                .map_or(4, |b| usize::from(b & 3) + 1);
            Framing::Length(size)
        }
        _ => Framing::AnnexB,
    }
}

/// Whether `kind` is the NAL unit type of a slice (of an IDR picture or any other).
fn is_slice(kind: u8) -> bool {
    kind == NAL_IDR || (NAL_SLICE..=NAL_PARTITION_C).contains(&kind)
}

/// The NAL unit type of the first slice (VCL NAL unit) of an access unit, if any.
fn first_slice_type(data: &[u8], framing: Framing) -> Option<u8> {
    match framing {
        Framing::AnnexB => {
            let mut rest = data;
            while let Some(at) = rest.windows(3).position(|w| w == [0, 0, 1]) {
                let kind = rest.get(at + 3)? & 0x1f;
                if is_slice(kind) {
                    return Some(kind);
                }
                rest = &rest[at + 3..];
            }
            None
        }
        Framing::Length(size) => {
            let mut at = 0usize;
            loop {
                let length = data
                    .get(at..at.checked_add(size)?)?
                    .iter()
                    .fold(0usize, |n, &b| (n << 8) | usize::from(b));
                let kind = data.get(at + size)? & 0x1f;
                if is_slice(kind) {
                    return Some(kind);
                }
                at = at.checked_add(size)?.checked_add(length)?;
            }
        }
    }
}

/// Plays the pipeline until its end, an error or `deadline`.
fn run(pipeline: &gst::Pipeline, deadline: Instant, budget: Duration) -> Result<(), ScanError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| failed("pipeline has no bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The bus says why; read it below.
        tracing::debug!("the scan pipeline did not start");
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ScanError::Timeout(budget));
        }
        let timeout = gst::ClockTime::from_nseconds(u64::try_from(left.as_nanos()).unwrap_or(0));
        let Some(message) =
            bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error])
        else {
            continue;
        };
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(err) => return Err(failed(err.error().message())),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_slice_decides() {
        let b = Framing::AnnexB;
        // AUD, SPS, PPS, then an IDR slice.
        let idr = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64, 0, 0, 1, 0x68, 0xee, 0, 0, 1, 0x65,
            0x88,
        ];
        assert_eq!(first_slice_type(&idr, b), Some(NAL_IDR));
        // An SEI (recovery point), then a non-IDR slice: an I picture that is not an IDR.
        let recovery = [0, 0, 1, 0x06, 0x06, 0x01, 0xc4, 0, 0, 1, 0x41, 0x9a];
        assert_eq!(first_slice_type(&recovery, b), Some(NAL_SLICE));
        assert_eq!(first_slice_type(&[0, 0, 1, 0x67, 0x64], b), None);
        assert_eq!(first_slice_type(&[0, 0, 1], b), None);
        assert_eq!(first_slice_type(&[], b), None);
    }

    #[test]
    fn length_prefixed_units_are_walked() {
        let four = Framing::Length(4);
        // An SEI of 3 bytes, then an IDR slice.
        let idr = [0, 0, 0, 3, 0x06, 0x05, 0x80, 0, 0, 0, 2, 0x65, 0x88];
        assert_eq!(first_slice_type(&idr, four), Some(NAL_IDR));
        let two = Framing::Length(2);
        assert_eq!(first_slice_type(&[0, 2, 0x41, 0x9a], two), Some(NAL_SLICE));
        // Lengths that run past the end, or past usize, are the end.
        assert_eq!(first_slice_type(&[0, 0, 0, 9, 0x06], four), None);
        assert_eq!(first_slice_type(&[0xff; 12], Framing::Length(8)), None);
        assert_eq!(first_slice_type(&[], four), None);
    }
}
