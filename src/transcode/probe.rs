//! Learns where a source's audio and video begin and end before any transcoding (no full decode).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;

use super::{TranscodeError, classify};
use crate::library::Source;

/// Longest a probe may take; a file that cannot be typed and prerolled by then is refused.
/// Below 5 s so that a bad file is refused within 5 s even when its error is lost: decodebin
/// can drop an error a demuxer posts while it is still being plugged (seen with truncated MP4
/// heads on GStreamer 1.22), and then only this timeout ends the probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Length of the built-in demo.
pub const DEMO_DURATION: Duration = Duration::from_secs(60);

/// How often the probe looks whether the first samples, or the ends, have come.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(5);

/// How far before the container's end the probe first looks for the last audio and video; the
/// search widens fourfold while it finds none (subtitles that outlast the picture by more).
const END_MARGIN: gst::ClockTime = gst::ClockTime::from_seconds(2);

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
    let deadline = Instant::now() + PROBE_TIMEOUT;
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
    // The Discoverer has checked that this is media we can decode; now where it lies in time.
    // Should that fail (damage near the end, too slow), the container's figures still play,
    // with the old flaws (a grid from 0, subtitle tails counted).
    let extent = measure(&uri, deadline).unwrap_or_else(|err| {
        tracing::warn!("cannot measure the audio/video extent of {uri}: {err}");
        Extent::default()
    });
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

/// The codecs of the first video and audio streams the Discoverer found.
fn codecs(info: &gst_pbutils::DiscovererInfo) -> Codecs {
    use gst_pbutils::prelude::DiscovererStreamInfoExt;
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

/// Why the audio/video extent could not be measured (the probe then falls back on the
/// container's figures).
#[derive(Debug, thiserror::Error)]
enum MeasureError {
    #[error("cannot build the measuring pipeline: {0}")]
    Build(String),
    #[error("GStreamer: {0}")]
    Pipeline(String),
    #[error("{0} timed out")]
    TimedOut(&'static str),
    #[error("no audio or video sample {0}")]
    NoSample(&'static str),
}

/// The span of a source's decoded audio and video, in its stream time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Extent {
    start: Option<gst::ClockTime>,
    end: Option<gst::ClockTime>,
}

impl Extent {
    fn widen(&mut self, start: gst::ClockTime, end: gst::ClockTime) {
        self.start = Some(self.start.map_or(start, |s| s.min(start)));
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
    }
}

/// What the measuring pipeline's pad probes record.
#[derive(Default)]
struct Marks {
    /// Decoded audio and video seen before the end search: the start.
    first: Mutex<Extent>,
    /// Audio and video seen since the last seek: the end.
    last: Mutex<Extent>,
    /// Set for the end search: compressed buffers are recorded and dropped before the decoders,
    /// so looking at the end costs demuxing, not decoding.
    skip_decoding: AtomicBool,
    started: Mutex<Started>,
    /// Audio and video streams that have not ended since their last flush: the end search is
    /// over when none is left. (The pipeline's own EOS message is no help there: one may be
    /// left from before the seek, as a short file can play to its end in the first phase.)
    running: Mutex<usize>,
}

/// Whether the audio and the video have shown their first sample. By kind, not by stream: a
/// DVD's subpictures are decoded to video too, and may show nothing for minutes.
#[derive(Default)]
struct Started {
    audio: Kind,
    video: Kind,
    /// decodebin has exposed every stream.
    all_pads: bool,
}

impl Started {
    fn kind(&mut self, video: bool) -> &mut Kind {
        if video {
            &mut self.video
        } else {
            &mut self.audio
        }
    }
}

/// The streams of one kind (audio or video) and how far they got.
#[derive(Default)]
struct Kind {
    streams: usize,
    /// Streams that ended.
    ended: usize,
    /// One of them has shown a sample.
    seen: bool,
}

impl Kind {
    fn done(&self) -> bool {
        self.seen || self.ended == self.streams
    }
}

impl Marks {
    fn started(&self) -> bool {
        let started = self.started.lock();
        started.all_pads && started.audio.done() && started.video.done()
    }

    /// Records `buffer` (arriving on `pad`) by its stream time.
    fn record(&self, pad: &gst::Pad, buffer: &gst::BufferRef, into: &Mutex<Extent>) {
        let Some(pts) = buffer.pts().or(buffer.dts()) else {
            return;
        };
        let Some(segment) = pad.sticky_event::<gst::event::Segment>(0) else {
            return;
        };
        let Some(segment) = segment.segment().downcast_ref::<gst::ClockTime>() else {
            return;
        };
        let end = pts.saturating_add(buffer.duration().unwrap_or(gst::ClockTime::ZERO));
        if let (Some(start), Some(end)) = (segment.to_stream_time(pts), segment.to_stream_time(end))
        {
            into.lock().widen(start, end);
        }
    }
}

/// Measures where the decoded audio and video of `uri` begin (playing a decoding pipeline up
/// to its first samples, so the start is exactly what a run sees) and end (seeking near the
/// container's end and reading timestamps without decoding), before `deadline`.
fn measure(uri: &str, deadline: Instant) -> Result<Extent, MeasureError> {
    let pipeline = gst::Pipeline::new();
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .map_err(|_| MeasureError::Build("no uridecodebin".into()))?;
    pipeline
        .add(&decode)
        .map_err(|e| MeasureError::Build(e.to_string()))?;
    let marks = Arc::new(Marks::default());

    let on_pad = marks.clone();
    let weak = pipeline.downgrade();
    decode.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let marks = on_pad.clone();
        let linked = super::guard::guard("the probe's pad-added", || {
            link_fakesink(&pipeline, pad, marks)
        });
        if !matches!(linked, Some(Ok(()))) {
            tracing::debug!("probe: a decoded stream could not be linked");
        }
    });
    let on_no_more_pads = marks.clone();
    decode.connect_no_more_pads(move |_| on_no_more_pads.started.lock().all_pads = true);
    let on_element = marks.clone();
    pipeline.connect_deep_element_added(move |_, _, element| {
        let marks = on_element.clone();
        super::guard::guard("the probe's element-added", || {
            skip_decoder_input(element, marks)
        });
    });

    let result = measure_with(&pipeline, &marks, deadline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn measure_with(
    pipeline: &gst::Pipeline,
    marks: &Marks,
    deadline: Instant,
) -> Result<Extent, MeasureError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MeasureError::Build("no bus".into()))?;
    // Not a preroll: sinks preroll on a GAP event too, and an MP4 whose edit list starts the
    // media at 1.5 s opens with one. Play until the audio and the video have shown a sample.
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        MeasureError::Pipeline(bus_error(&bus).unwrap_or_else(|| "cannot start".into()))
    })?;
    wait(&bus, deadline, || marks.started(), "the first samples")?;
    let first = *marks.first.lock();
    let Some(start) = first.start else {
        return Err(MeasureError::NoSample("at the start"));
    };
    let Some(duration) = pipeline.query_duration::<gst::ClockTime>() else {
        return Ok(Extent {
            start: Some(start),
            end: None,
        });
    };

    marks.skip_decoding.store(true, Ordering::Release);
    let mut margin = END_MARGIN;
    loop {
        let from = duration.saturating_sub(margin).max(start);
        pipeline
            .seek(
                1.0,
                gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT | gst::SeekFlags::SNAP_BEFORE,
                gst::SeekType::Set,
                Some(from),
                gst::SeekType::None,
                gst::ClockTime::NONE,
            )
            .map_err(|_| MeasureError::Pipeline("cannot seek".into()))?;
        // The flush has reached every sink by now: what they record next is from `from` on.
        *marks.last.lock() = Extent::default();
        wait(
            &bus,
            deadline,
            || *marks.running.lock() == 0,
            "the end search",
        )?;
        let last = *marks.last.lock();
        if let Some(end) = last.end {
            return Ok(Extent {
                start: Some(start),
                end: Some(end.max(start)),
            });
        }
        if from <= start {
            return Err(MeasureError::NoSample("near the end"));
        }
        margin = margin.saturating_mul(4);
    }
}

/// Waits until `done` (checked every [`POLL`]), an error on `bus`, or `deadline`.
fn wait(
    bus: &gst::Bus,
    deadline: Instant,
    done: impl Fn() -> bool,
    what: &'static str,
) -> Result<(), MeasureError> {
    while !done() {
        if Instant::now() >= deadline {
            return Err(MeasureError::TimedOut(what));
        }
        if let Some(message) = bus.timed_pop_filtered(POLL, &[gst::MessageType::Error]) {
            return Err(MeasureError::Pipeline(error_text(&message)));
        }
    }
    Ok(())
}

fn bus_error(bus: &gst::Bus) -> Option<String> {
    bus.pop_filtered(&[gst::MessageType::Error])
        .map(|message| error_text(&message))
}

fn error_text(message: &gst::Message) -> String {
    match message.view() {
        gst::MessageView::Error(err) => err.error().to_string(),
        _ => format!("{message:?}"),
    }
}

/// Whether decoded `caps` are audio or video (what the plan counts).
fn is_audio_video(caps: &gst::CapsRef) -> bool {
    caps.structure(0)
        .is_some_and(|s| s.name().starts_with("video/") || s.name().starts_with("audio/"))
}

/// Ends a decoded stream in a fakesink; audio and video are recorded.
fn link_fakesink(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    marks: Arc<Marks>,
) -> Result<(), MeasureError> {
    let build = |e: &dyn std::fmt::Display| MeasureError::Build(e.to_string());
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let counted = is_audio_video(&caps);
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|_| build(&"no fakesink"))?;
    pipeline.add(&sink).map_err(|e| build(&e))?;
    sink.sync_state_with_parent().map_err(|e| build(&e))?;
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| build(&"fakesink has no pad"))?;
    let video = caps
        .structure(0)
        .is_some_and(|s| s.name().starts_with("video/"));
    if counted {
        marks.started.lock().kind(video).streams += 1;
        *marks.running.lock() += 1;
        // Whether this stream ended at all, and since its last flush.
        let (ended_once, ended) = (AtomicBool::new(false), AtomicBool::new(false));
        let types = gst::PadProbeType::BUFFER
            | gst::PadProbeType::EVENT_DOWNSTREAM
            | gst::PadProbeType::EVENT_FLUSH;
        sink_pad.add_probe(types, move |pad, info| {
            let event = match &info.data {
                Some(gst::PadProbeData::Event(e)) => Some(e.type_()),
                _ => None,
            };
            if let Some(buffer) = info.buffer() {
                let into = if marks.skip_decoding.load(Ordering::Acquire) {
                    &marks.last
                } else {
                    &marks.first
                };
                super::guard::guard("the probe's buffer probe", || {
                    marks.record(pad, buffer, into)
                });
                marks.started.lock().kind(video).seen = true;
            } else if event == Some(gst::EventType::Eos) {
                if !ended.swap(true, Ordering::AcqRel) {
                    let mut running = marks.running.lock();
                    *running = running.saturating_sub(1);
                }
                if !ended_once.swap(true, Ordering::AcqRel) {
                    marks.started.lock().kind(video).ended += 1;
                }
            } else if event == Some(gst::EventType::FlushStop)
                && ended.swap(false, Ordering::AcqRel)
            {
                *marks.running.lock() += 1;
            }
            gst::PadProbeReturn::Ok
        });
    }
    pad.link(&sink_pad).map_err(|e| build(&e))?;
    Ok(())
}

/// On an audio or video decoder: during the end search, records and drops its input.
fn skip_decoder_input(element: &gst::Element, marks: Arc<Marks>) {
    let klass = element
        .factory()
        .and_then(|f| f.metadata(gst::ELEMENT_METADATA_KLASS).map(str::to_owned))
        .unwrap_or_default();
    if !klass.contains("Decoder") {
        return;
    }
    let Some(pad) = element.static_pad("sink") else {
        return;
    };
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        // By what it decodes, not by its class: dvdsubdec calls itself a video decoder.
        let counted = pad.current_caps().is_some_and(|caps| is_audio_video(&caps));
        if !counted || !marks.skip_decoding.load(Ordering::Acquire) {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(buffer) = info.buffer() {
            super::guard::guard("the probe's decoder probe", || {
                marks.record(pad, buffer, &marks.last)
            });
        }
        // Handled, not Drop: the binding releases the buffer; with Drop it is unreffed twice
        // (a GStreamer-CRITICAL per buffer with gstreamer-rs 0.25 on GStreamer 1.22).
        gst::PadProbeReturn::Handled
    });
}

#[cfg(test)]
mod tests {
    use super::Extent;

    #[test]
    fn the_extent_spans_every_stream() {
        let ms = gst::ClockTime::from_mseconds;
        let mut extent = Extent::default();
        // Audio from 0.53 s to 16.49 s, video from 0.54 s to 16.54 s: what MPEG-PS has.
        extent.widen(ms(540), ms(16_540));
        extent.widen(ms(530), ms(16_490));
        assert_eq!(extent.start, Some(ms(530)));
        assert_eq!(extent.end, Some(ms(16_540)));
    }
}
