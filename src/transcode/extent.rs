//! Where a source's audio and video begin (decoded, as a run sees them) and end (read without decoding), measured side by side.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use gst::prelude::*;
use parking_lot::Mutex;

use super::guard::guard;

/// How often the measurement looks whether the first samples, or the ends, have come.
const POLL: gst::ClockTime = gst::ClockTime::from_mseconds(5);

/// How far before the container's end the end search first looks for the last audio and video;
/// the search widens fourfold while it finds none (subtitles that outlast the picture by more).
const END_MARGIN: gst::ClockTime = gst::ClockTime::from_seconds(2);

/// Why a bound could not be measured (the probe then falls back on the container's figures).
#[derive(Debug, thiserror::Error)]
pub(super) enum MeasureError {
    #[error("cannot build the measuring pipeline: {0}")]
    Build(String),
    #[error("GStreamer: {0}")]
    Pipeline(String),
    #[error("{0} timed out")]
    TimedOut(&'static str),
    #[error("no audio or video sample {0}")]
    NoSample(&'static str),
    #[error("the end search failed")]
    Panicked,
    #[error("the file was refused")]
    Refused,
}

/// The span of a source's audio and video, in its stream time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extent {
    pub start: Option<gst::ClockTime>,
    pub end: Option<gst::ClockTime>,
}

impl Extent {
    fn widen(&mut self, start: gst::ClockTime, end: gst::ClockTime) {
        self.start = Some(self.start.map_or(start, |s| s.min(start)));
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
    }
}

/// Measures the start and the end of `path` (at `uri`) before `deadline`, each in its own
/// pipeline on its own thread. The end is `None` when it cannot be found (the container's
/// duration then stands in); without a start there is no extent.
///
/// `streams` is set, while this runs, to how many audio and video streams the file has (the
/// Discoverer's count; 0 when the Discoverer refused it, which ends both searches at once). The
/// end search needs it before it seeks: parsebin (1.22) never signals no-more-pads, and its
/// stream collection can come before a late stream (FLV's audio) is exposed.
///
/// Two pipelines, not one sought after its first samples: a flushing seek on a playing
/// uridecodebin deadlocked about one time in forty with FLV on GStreamer 1.22 (the seek waited
/// for a multiqueue task that sat in an un-flushed queue), which hung the stream's opening. The
/// end search has no multiqueue and no decoder, and running both at once also halves the wait.
pub(super) fn measure(
    uri: &str,
    path: &Path,
    streams: &OnceLock<usize>,
    deadline: Instant,
) -> Result<Extent, MeasureError> {
    let (start, end) = std::thread::scope(|scope| {
        let end = scope.spawn(|| {
            guard("the probe's end search", || {
                find_end(path, streams, deadline)
            })
            .unwrap_or(Err(MeasureError::Panicked))
        });
        let start = find_start(uri, streams, deadline);
        let end = end.join().unwrap_or(Err(MeasureError::Panicked));
        (start, end)
    });
    let start = start?;
    let end = end.unwrap_or_else(|err| {
        tracing::warn!("cannot find where the audio/video of {uri} ends: {err}");
        None
    });
    Ok(Extent {
        start: Some(start),
        end: end.map(|end| end.max(start)),
    })
}

/// Records `buffer` (arriving on `pad`) by its stream time into `into`.
fn record(pad: &gst::Pad, buffer: &gst::BufferRef, into: &Mutex<Extent>) {
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
    if let (Some(start), Some(end)) = (segment.to_stream_time(pts), segment.to_stream_time(end)) {
        into.lock().widen(start, end);
    }
}

/// Whether `caps` are audio or video (what the plan counts), decoded or not. DVD subpictures
/// are `subpicture/…` before their decoder, and video after it: the start search counts them as
/// video by kind (see [`Started`]), the end search leaves them out.
pub(super) fn is_audio_video(caps: &gst::CapsRef) -> bool {
    caps.structure(0)
        .is_some_and(|s| s.name().starts_with("video/") || s.name().starts_with("audio/"))
}

/// A fakesink in `pipeline`, started; it never prerolls (the pipelines play, never pause).
fn fakesink(pipeline: &gst::Pipeline) -> Result<(gst::Element, gst::Pad), MeasureError> {
    let build = |e: &dyn std::fmt::Display| MeasureError::Build(e.to_string());
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|_| build(&"no fakesink"))?;
    pipeline.add(&sink).map_err(|e| build(&e))?;
    sink.sync_state_with_parent().map_err(|e| build(&e))?;
    let pad = sink
        .static_pad("sink")
        .ok_or_else(|| build(&"fakesink has no pad"))?;
    Ok((sink, pad))
}

/// Links every pad `element` (in `pipeline`) adds with `link`, which records into `marks`; a
/// panic in it is caught (and the stream left unlinked), as in every GStreamer callback here.
fn link_pads<M: Send + Sync + 'static>(
    pipeline: &gst::Pipeline,
    element: &gst::Element,
    marks: &Arc<M>,
    what: &'static str,
    link: fn(&gst::Pipeline, &gst::Pad, Arc<M>) -> Result<(), MeasureError>,
) {
    let marks = marks.clone();
    let weak = pipeline.downgrade();
    element.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let linked = guard(what, || link(&pipeline, pad, marks.clone()));
        if !matches!(linked, Some(Ok(()))) {
            tracing::debug!("probe, {what}: a stream could not be linked");
        }
    });
}

/// Sets `pipeline` playing; if it cannot start, the error the bus has says why.
fn play(pipeline: &gst::Pipeline, bus: &gst::Bus) -> Result<(), MeasureError> {
    pipeline
        .set_state(gst::State::Playing)
        .map(|_| ())
        .map_err(|_| {
            MeasureError::Pipeline(bus_error(bus).unwrap_or_else(|| "cannot start".into()))
        })
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

fn bus_of(pipeline: &gst::Pipeline) -> Result<gst::Bus, MeasureError> {
    pipeline
        .bus()
        .ok_or_else(|| MeasureError::Build("no bus".into()))
}

// The start: decoded, so that it is exactly what a run sees (an edit list, a decoder that drops
// leading pictures).

/// What the start search's pad probes record.
#[derive(Default)]
struct First {
    extent: Mutex<Extent>,
    started: Mutex<Started>,
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

    fn done(&self) -> bool {
        self.all_pads && self.audio.done() && self.video.done()
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

/// Where the decoded audio and video of `uri` begin: plays a decoding pipeline up to its first
/// samples. Not a preroll: sinks preroll on a GAP event too, and an MP4 whose edit list starts
/// the media at 1.5 s opens with one.
fn find_start(
    uri: &str,
    streams: &OnceLock<usize>,
    deadline: Instant,
) -> Result<gst::ClockTime, MeasureError> {
    let pipeline = gst::Pipeline::new();
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .map_err(|_| MeasureError::Build("no uridecodebin".into()))?;
    pipeline
        .add(&decode)
        .map_err(|e| MeasureError::Build(e.to_string()))?;
    let first = Arc::new(First::default());
    link_pads(
        &pipeline,
        &decode,
        &first,
        "the start search",
        link_start_sink,
    );
    let on_no_more_pads = first.clone();
    decode.connect_no_more_pads(move |_| on_no_more_pads.started.lock().all_pads = true);

    let result = bus_of(&pipeline).and_then(|bus| {
        play(&pipeline, &bus)?;
        let done = || first.started.lock().done() || streams.get() == Some(&0);
        wait(&bus, deadline, done, "the first samples")
    });
    if streams.get() == Some(&0) {
        return Err(MeasureError::Refused);
    }
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let start = first.extent.lock().start;
    start.ok_or(MeasureError::NoSample("at the start"))
}

/// Ends a decoded stream in a fakesink; audio and video are recorded.
fn link_start_sink(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    first: Arc<First>,
) -> Result<(), MeasureError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let (_, sink_pad) = fakesink(pipeline)?;
    if is_audio_video(&caps) {
        let video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        first.started.lock().kind(video).streams += 1;
        let ended = AtomicBool::new(false);
        let types = gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM;
        sink_pad.add_probe(types, move |pad, info| {
            if let Some(buffer) = info.buffer() {
                guard("the probe's buffer probe", || {
                    record(pad, buffer, &first.extent)
                });
                first.started.lock().kind(video).seen = true;
            } else if info.event().map(|e| e.type_()) == Some(gst::EventType::Eos)
                && !ended.swap(true, Ordering::AcqRel)
            {
                first.started.lock().kind(video).ended += 1;
            }
            gst::PadProbeReturn::Ok
        });
    }
    pad.link(&sink_pad)
        .map_err(|e| MeasureError::Build(e.to_string()))?;
    Ok(())
}

// The end: demuxed and parsed, never decoded, so looking near the end costs little.

/// What the end search's pad probes record.
#[derive(Default)]
struct Last {
    /// Audio and video seen since the last seek.
    extent: Mutex<Extent>,
    streams: Mutex<Streams>,
}

#[derive(Default)]
struct Streams {
    /// Audio and video streams linked.
    counted: usize,
    /// Of those, the ones that have shown a buffer or ended: seeking before then could meet a
    /// demuxer that has not read its headers.
    ready: usize,
    /// Audio and video streams that have not ended since their last flush: the search is over
    /// when none is left. (The pipeline's own EOS message is no help: one may be left from
    /// before the seek, as a short file can play to its end before it.)
    running: usize,
}

/// Where the audio and video of `path` end, in stream time: a demux-only pipeline sought near
/// the container's end, reading timestamps to the end. `None` when the container gives no
/// duration to seek near.
fn find_end(
    path: &Path,
    streams: &OnceLock<usize>,
    deadline: Instant,
) -> Result<Option<gst::ClockTime>, MeasureError> {
    let pipeline = gst::Pipeline::new();
    let build = |e: &dyn std::fmt::Display| MeasureError::Build(e.to_string());
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_string_lossy().as_ref())
        .build()
        .map_err(|_| build(&"no filesrc"))?;
    let parse = gst::ElementFactory::make("parsebin")
        .build()
        .map_err(|_| build(&"no parsebin"))?;
    pipeline.add_many([&src, &parse]).map_err(|e| build(&e))?;
    src.link(&parse).map_err(|e| build(&e))?;
    let last = Arc::new(Last::default());
    link_pads(&pipeline, &parse, &last, "the end search", link_end_sink);

    let result =
        bus_of(&pipeline).and_then(|bus| search_end(&pipeline, &bus, &last, streams, deadline));
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Waits until the file's `streams` (once known) are all linked and each has shown a buffer or
/// ended.
fn wait_for_streams(
    bus: &gst::Bus,
    last: &Last,
    streams: &OnceLock<usize>,
    deadline: Instant,
) -> Result<(), MeasureError> {
    let ready = || {
        let linked = last.streams.lock();
        streams.get().is_some_and(|&expected| {
            expected == 0 || (linked.counted >= expected && linked.ready == linked.counted)
        })
    };
    wait(bus, deadline, ready, "the end search's start")?;
    if streams.get() == Some(&0) {
        return Err(MeasureError::Refused);
    }
    Ok(())
}

fn search_end(
    pipeline: &gst::Pipeline,
    bus: &gst::Bus,
    last: &Last,
    streams: &OnceLock<usize>,
    deadline: Instant,
) -> Result<Option<gst::ClockTime>, MeasureError> {
    play(pipeline, bus)?;
    wait_for_streams(bus, last, streams, deadline)?;
    let Some(duration) = pipeline.query_duration::<gst::ClockTime>() else {
        return Ok(None);
    };
    let mut margin = END_MARGIN;
    loop {
        let from = duration.saturating_sub(margin);
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
        *last.extent.lock() = Extent::default();
        wait(
            bus,
            deadline,
            || last.streams.lock().running == 0,
            "the end search",
        )?;
        if let Some(end) = last.extent.lock().end {
            return Ok(Some(end));
        }
        if from.is_zero() {
            return Err(MeasureError::NoSample("near the end"));
        }
        margin = margin.saturating_mul(4);
    }
}

/// Ends a parsed stream in a fakesink; audio and video are recorded and counted.
fn link_end_sink(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    last: Arc<Last>,
) -> Result<(), MeasureError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let (_, sink_pad) = fakesink(pipeline)?;
    if is_audio_video(&caps) {
        {
            let mut streams = last.streams.lock();
            streams.counted += 1;
            streams.running += 1;
        }
        // Whether this stream is ready (once), and whether it ended since its last flush.
        let (ready, ended) = (AtomicBool::new(false), AtomicBool::new(false));
        let types = gst::PadProbeType::BUFFER
            | gst::PadProbeType::EVENT_DOWNSTREAM
            | gst::PadProbeType::EVENT_FLUSH;
        sink_pad.add_probe(types, move |pad, info| {
            let event = info.event().map(|e| e.type_());
            if let Some(buffer) = info.buffer() {
                guard("the end search's probe", || {
                    record(pad, buffer, &last.extent)
                });
            } else if event == Some(gst::EventType::Eos) {
                if !ended.swap(true, Ordering::AcqRel) {
                    let mut streams = last.streams.lock();
                    streams.running = streams.running.saturating_sub(1);
                }
            } else if event == Some(gst::EventType::FlushStop)
                && ended.swap(false, Ordering::AcqRel)
            {
                last.streams.lock().running += 1;
            }
            if (info.buffer().is_some() || event == Some(gst::EventType::Eos))
                && !ready.swap(true, Ordering::AcqRel)
            {
                last.streams.lock().ready += 1;
            }
            gst::PadProbeReturn::Ok
        });
    }
    pad.link(&sink_pad)
        .map_err(|e| MeasureError::Build(e.to_string()))?;
    Ok(())
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
