//! A keyframe index for containers without tables (MPEG-TS/PS, AVI, FLV): one demux-only pass, no decoding, within a time budget.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;

use super::pipeline::make;
use super::timeline::stream_time;

/// The containers (as typefind names them) and demuxers whose timestamps a scan and a direct run
/// are known to agree on (a run sought to any scanned keyframe starts on it): MPEG-TS and FLV.
/// avidemux gives H.264 with B-frames decode-order times (the scan of an AVI came out 2 s short
/// and its joined segments did not decode cleanly) and mpegpsdemux does not recognise H.264
/// without a stream map, so those containers transcode.
const DEMUXERS: [(&str, &str); 2] = [("video/mpegts", "tsdemux"), ("video/x-flv", "flvdemux")];

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
    /// How far into the file the demuxer had read when each keyframe came out: the bytes
    /// between two keyframes (all streams) are what a segment between them carries, give or
    /// take a picture. Ascending by time, like `keyframes`; may miss some.
    pub positions: Vec<(Duration, u64)>,
    /// The file's length when scanned: the last segment's bytes end there.
    pub file_len: u64,
}

/// Why a scan gave no keyframes. Every kind means the same to a caller: transcode instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("GStreamer element {0} is missing")]
    MissingElement(&'static str),
    #[error("scan took over {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("scan not finished within {} s (it goes on in the background)", .0.as_secs_f64())]
    Unfinished(Duration),
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
    #[error("cannot read the file: {0}")]
    Io(String),
}

impl From<std::io::Error> for ScanError {
    fn from(err: std::io::Error) -> Self {
        ScanError::Io(err.to_string())
    }
}

impl crate::library::index::Weigh for Scan {
    fn keyframes(&self) -> usize {
        self.keyframes.len()
    }
}

/// What the pad probe has seen so far.
#[derive(Default)]
struct Seen {
    video: bool,
    keyframes: Vec<Duration>,
    positions: Vec<(Duration, u64)>,
    end: Option<Duration>,
    overflow: bool,
    /// The file source, asked where it is when a keyframe comes out.
    src: Option<gst::glib::WeakRef<gst::Element>>,
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
    result?;
    if seen.overflow {
        return Err(ScanError::TooManyKeyframes);
    }
    if !seen.video {
        return Err(ScanError::NoVideo);
    }
    seen.keyframes.sort_unstable();
    seen.keyframes.dedup();
    seen.positions.sort_unstable();
    seen.positions.dedup_by_key(|p| p.0);
    let (Some(&first), Some(end)) = (seen.keyframes.first(), seen.end) else {
        return Err(ScanError::NoKeyframe);
    };
    Ok(Scan {
        keyframes: seen.keyframes,
        end: end.max(first),
        positions: seen.positions,
        file_len: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

fn missing(factory: &'static str) -> impl FnOnce(super::TranscodeError) -> ScanError {
    move |_| ScanError::MissingElement(factory)
}

fn failed(err: impl std::fmt::Display) -> ScanError {
    ScanError::Failed(err.to_string())
}

/// Bytes of the file's head its type is found from (MPEG-TS needs a few packets in a row).
const TYPEFIND_BYTES: usize = 64 * 1024;

/// The demuxer for the file at `path`, by the type of its first bytes (GStreamer's own
/// typefinders), if it is one of [`DEMUXERS`].
fn demuxer_for(path: &Path) -> Result<&'static str, ScanError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(TYPEFIND_BYTES);
    std::fs::File::open(path)?
        .take(TYPEFIND_BYTES as u64)
        .read_to_end(&mut head)?;
    let kind = gst_base::type_find_helper_for_data(None::<&gst::Object>, &head)
        .ok()
        .and_then(|(caps, _)| caps.structure(0).map(|s| s.name().to_string()))
        .unwrap_or_else(|| "unknown".to_owned());
    DEMUXERS
        .iter()
        .find(|(media, _)| *media == kind)
        .map(|&(_, factory)| factory)
        .ok_or(ScanError::Container(kind))
}

/// filesrc → the container's demuxer; its first H.264 stream → h264parse → capsfilter (Annex B,
/// whole pictures) → fakesink with the probe. Other streams stay unlinked (a demuxer carries on
/// while any of its streams is linked). Built by hand rather than with parsebin, which drops an
/// error a demuxer posts while it is being plugged: over garbage MPEG-TS the scan then ended only
/// at its budget, now at once. The type is found before the pipeline exists: a `typefind`
/// element plugging the demuxer from its streaming thread deadlocked against the pipeline's own
/// start (GStreamer 1.22: its task waits for the state lock `sync_state_with_parent` needs, while
/// the state change waits for that task's stream lock).
fn build(path: &Path, seen: &Arc<Mutex<Seen>>) -> Result<gst::Pipeline, ScanError> {
    let factory = demuxer_for(path)?;
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().as_ref())
        .build()
        .map_err(|_| ScanError::MissingElement("filesrc"))?;
    let demux = make(factory).map_err(missing(factory))?;
    pipeline.add_many([&src, &demux]).map_err(failed)?;
    src.link(&demux).map_err(failed)?;
    seen.lock().src = Some(src.downgrade());
    let weak = pipeline.downgrade();
    let on_pad = seen.clone();
    demux.connect_pad_added(move |demux, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let linked = super::guard::guard("the scan's pad-added", || {
            link_video(&pipeline, pad, &on_pad)
        })
        .unwrap_or_else(|| Err(ScanError::Failed("internal error".into())));
        if let Err(err) = linked {
            gst::element_error!(demux, gst::CoreError::Negotiation, ("{}", err));
        }
    });
    Ok(pipeline)
}

/// Links `pad` to the probed branch if it is the first H.264 stream.
fn link_video(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    seen: &Arc<Mutex<Seen>>,
) -> Result<(), ScanError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let h264 = caps
        .structure(0)
        .is_some_and(|s| s.name() == "video/x-h264");
    if !h264 || std::mem::replace(&mut seen.lock().video, true) {
        return Ok(());
    }
    let parse = make("h264parse").map_err(missing("h264parse"))?;
    // Whole pictures with start codes, whatever the container stores, so that a buffer's first
    // slice is easy to find.
    let filter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        )
        .build()
        .map_err(|_| ScanError::MissingElement("capsfilter"))?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|_| ScanError::MissingElement("fakesink"))?;
    let elements = [parse, filter, sink];
    pipeline.add_many(&elements).map_err(failed)?;
    gst::Element::link_many(&elements).map_err(failed)?;
    for element in &elements {
        element.sync_state_with_parent().map_err(failed)?;
    }
    let [parse, _, sink] = &elements;
    let probed = sink
        .static_pad("sink")
        .ok_or_else(|| failed("fakesink has no sink pad"))?;
    let seen = seen.clone();
    probed.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        super::guard::guard("the scan probe", || on_buffer(pad, info, &seen));
        gst::PadProbeReturn::Ok
    });
    let head = parse
        .static_pad("sink")
        .ok_or_else(|| failed("h264parse has no sink pad"))?;
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
            .is_ok_and(|map| first_slice_type(map.as_slice()) == Some(NAL_IDR));
    let mut seen = seen.lock();
    let end = Duration::from_nanos(end.nseconds());
    seen.end = Some(seen.end.map_or(end, |e| e.max(end)));
    if idr {
        if seen.keyframes.len() >= MAX_KEYFRAMES {
            seen.overflow = true;
        } else {
            let time = Duration::from_nanos(start.nseconds());
            seen.keyframes.push(time);
            let read = seen
                .src
                .as_ref()
                .and_then(|src| src.upgrade())
                .and_then(|src| src.query_position::<gst::format::Bytes>());
            if let Some(read) = read {
                seen.positions.push((time, *read));
            }
        }
    }
}

/// Whether `kind` is the NAL unit type of a slice (of an IDR picture or any other).
fn is_slice(kind: u8) -> bool {
    kind == NAL_IDR || (NAL_SLICE..=NAL_PARTITION_C).contains(&kind)
}

/// The NAL unit type of the first slice (VCL NAL unit) of an Annex B access unit, if any.
fn first_slice_type(data: &[u8]) -> Option<u8> {
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
        // AUD, SPS, PPS, then an IDR slice.
        let idr = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 0x64, 0, 0, 1, 0x68, 0xee, 0, 0, 1, 0x65,
            0x88,
        ];
        assert_eq!(first_slice_type(&idr), Some(NAL_IDR));
        // An SEI (recovery point), then a non-IDR slice: an I picture that is not an IDR.
        let recovery = [0, 0, 1, 0x06, 0x06, 0x01, 0xc4, 0, 0, 1, 0x41, 0x9a];
        assert_eq!(first_slice_type(&recovery), Some(NAL_SLICE));
        assert_eq!(first_slice_type(&[0, 0, 1, 0x67, 0x64]), None);
        assert_eq!(first_slice_type(&[0, 0, 1]), None);
        assert_eq!(first_slice_type(&[]), None);
    }
}
