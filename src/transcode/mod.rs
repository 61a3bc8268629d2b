//! GStreamer side: runs one pipeline per stream on its own threads and feeds its TS bytes to the segmenter.
//!
//! Nothing here touches the async runtime: [`Transcode::start`] does blocking GStreamer calls
//! (call it from `spawn_blocking`), and results leave through the [`Output`] callbacks, which are
//! invoked on GStreamer's streaming thread (segments) and on this module's bus thread (the end).

mod extent;
mod guard;
mod keyframes;
mod picture;
mod pipeline;
mod probe;
mod registry;
pub mod scan;
mod text;
mod timeline;
mod warm;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gst::prelude::*;
use parking_lot::Mutex;

use crate::config::EncoderSettings;
use crate::library::Source;
use crate::segmenter::{Segment, Segmenter};
pub use picture::{encoded_size, h264_level};
use probe::DEMO_DURATION;
pub use probe::{
    AudioCodec, AudioTrack, Codecs, PROBE_TIMEOUT, Probe, SubtitleTrack, Tracks, VideoCodec, probe,
};
pub use registry::{RegistryEnv, registry_env};
pub use text::{TextTrack, extract_text};
pub use warm::warm_up;

/// The PTS mpegtsmux gives running time 0 (it starts its clock at one hour).
const MUX_CLOCK_BASE: u64 = 3600 * crate::segmenter::PTS_HZ;

/// The PTS of running time 0 in every run's output (mpegtsmux starts its clock at one hour):
/// the media time of a plan's origin, for WebVTT's X-TIMESTAMP-MAP.
pub const PTS_AT_ORIGIN: u64 = MUX_CLOCK_BASE;

/// Profile and constraint flags of the H.264 a transcode makes at `preset`: x264 signals
/// Constrained Baseline when it uses no CABAC and no 8x8 transform (ultrafast), else High
/// (no preset turns on B-frames here: the encoder is tuned for zero latency).
pub fn encoded_profile(preset: &str) -> [u8; 2] {
    if preset == "ultrafast" {
        [66, 0xC0]
    } else {
        [100, 0]
    }
}

/// Name of the application message that asks the bus thread to stop the pipeline.
const STOP_MESSAGE: &str = "hlss-stop";
/// Pipelines whose bus thread has not yet set them to NULL.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How many pipelines exist and are not yet stopped (for a clean shutdown).
pub fn running() -> usize {
    RUNNING.load(Ordering::Acquire)
}

/// Longest a run that starts mid-file may take to preroll before it seeks.
const PREROLL_TIMEOUT: gst::ClockTime = gst::ClockTime::from_seconds(10);
/// How far before its start a run first seeks: enough for MPEG-PS, whose seeks land up to a
/// second late, and little extra decoding for demuxers that seek exactly.
const SEEK_LEAD: gst::ClockTime = gst::ClockTime::from_seconds(1);
/// The furthest back a run seeks before it accepts a late landing.
const MAX_SEEK_LEAD: gst::ClockTime = gst::ClockTime::from_seconds(16);

/// Why a transcode could not start or did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    #[error("GStreamer element {0} is missing; install the plugin package that provides it")]
    MissingElement(&'static str),
    #[error("not a playable media file: {0}")]
    NotMedia(String),
    #[error("transcoding failed: {0}")]
    Failed(String),
}

/// What a direct run does with the source's audio (its video always passes through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectAudio {
    /// AAC passes through as it is; any other audio is encoded to AAC.
    Pass,
    /// Every audio stream is decoded and encoded to AAC (for AAC players may not decode).
    Encode,
}

/// How a run treats the source's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Decode everything, encode H.264 and AAC with keyframes on the segment grid.
    Transcode,
    /// Pass H.264 (and AAC, as [`DirectAudio`] says) through undecoded; cut at the source's
    /// keyframes.
    Direct(DirectAudio),
    /// One audio track alone (an alternate rendition): AAC passed through when `pass`, else
    /// encoded; cut where the plan says.
    Audio { pass: bool },
}

/// What a run takes from the source besides its mode.
#[derive(Debug, Clone, Default)]
pub struct Pick {
    /// The stream id of the audio track to play (the Discoverer's); `None`: the first.
    pub audio: Option<String>,
    /// The picture alone: the sound comes in renditions of its own.
    pub without_audio: bool,
    /// Where segments start, as media time after the plan's origin, when they are not on the
    /// even grid (an audio rendition of a direct stream cuts where the video's keyframes are).
    pub cuts: Option<Arc<[Duration]>>,
    /// The H.264 level a transcode's encoder is told (see [`h264_level`]); `None`: its own.
    pub h264_level: Option<u8>,
}

/// Where a running transcode delivers its results. `segment` runs on GStreamer's streaming thread;
/// blocking there pauses the pipeline (that is how a stream throttles a run), so an
/// implementation that blocks must return once the owner has decided to stop the transcode.
pub trait Output: Send + Sync + 'static {
    fn segment(&self, segment: Segment);
    /// Called exactly once, after the last segment.
    fn end(&self, result: Result<(), TranscodeError>);
}

/// A running pipeline. Dropping it stops the pipeline (asynchronously, on the bus thread).
pub struct Transcode {
    pipeline: gst::Pipeline,
}

impl Transcode {
    /// Builds and starts a pipeline for `source` from media time `at` (a segment boundary,
    /// `origin + k * segment`), where `origin` is [`Probe::origin`]. Output running time is media
    /// time minus `origin` and keyframes are forced every segment duration of it, so runs splice
    /// and segment `k` is the same whichever run made it. `origin` is `None` only for a run from
    /// the start (`at` = 0) of a stream that is not probed (EVENT playlists): the demuxer's first
    /// segment then stands in for it, which is exact for MPEG-PS and -TS and for media starting
    /// at 0, but not for an MP4 whose edit list starts it late (qtdemux opens with a gap segment
    /// at 0), which is why VOD streams start no run before the probe.
    /// Blocking: call off the async runtime.
    pub fn start(
        source: &Source,
        settings: &EncoderSettings,
        pick: &Pick,
        at: Duration,
        origin: Option<Duration>,
        output: Arc<dyn Output>,
    ) -> Result<Transcode, TranscodeError> {
        Self::launch(source, settings, Mode::Transcode, pick, at, origin, output)
    }

    /// Starts a run of one audio track alone (`pick.audio`), for an alternate audio rendition:
    /// AAC-LC passes through when `pass`, anything else is encoded to AAC. It shares the main
    /// rendition's timeline (running time = media time - `origin`), so its PTS match the
    /// video's, and cuts at the first audio frame at or after each segment start: on the even
    /// grid of `settings.segment`, or at `pick.cuts`. Blocking: call off the async runtime.
    pub fn start_audio(
        source: &Source,
        settings: &EncoderSettings,
        pick: &Pick,
        pass: bool,
        at: Duration,
        origin: Duration,
        output: Arc<dyn Output>,
    ) -> Result<Transcode, TranscodeError> {
        let mode = Mode::Audio { pass };
        Self::launch(source, settings, mode, pick, at, Some(origin), output)
    }

    /// Starts a direct run: the source's H.264 video passes through undecoded (and its AAC
    /// audio, per `audio`) and is cut only at its own keyframes, the first cut at least
    /// `settings.segment - slack` after the previous (the segmenter's rule; see
    /// [`Segmenter::keyframes_only`]). `at` is the PTS, in media time, of the keyframe that
    /// starts the run's first segment (for a file without video, the start of the audio frame
    /// where the segmenter's grid cuts); `origin` is the media time of the first segment's
    /// start (the first keyframe). Output running time is media time minus `origin`, so the
    /// segment starting at keyframe `at` has the same PTS (`at - origin` + the muxer's hour)
    /// whichever run made it. The source must be a file with H.264 video or with audio only;
    /// other video fails the run (eligibility is the caller's to decide). Blocking: call off the
    /// async runtime.
    pub fn start_direct(
        source: &Source,
        settings: &EncoderSettings,
        pick: &Pick,
        audio: DirectAudio,
        at: Duration,
        origin: Duration,
        output: Arc<dyn Output>,
    ) -> Result<Transcode, TranscodeError> {
        let mode = Mode::Direct(audio);
        Self::launch(source, settings, mode, pick, at, Some(origin), output)
    }

    fn launch(
        source: &Source,
        settings: &EncoderSettings,
        mode: Mode,
        pick: &Pick,
        at: Duration,
        origin: Option<Duration>,
        output: Arc<dyn Output>,
    ) -> Result<Transcode, TranscodeError> {
        let at = clock_time(at);
        // The demo is endless test sources: the seek's stop position is what ends it.
        let stop = matches!(source, Source::Demo).then(|| clock_time(DEMO_DURATION));
        let known_origin = origin.map(clock_time);
        let origin = known_origin.unwrap_or(gst::ClockTime::ZERO);
        let direct = matches!(mode, Mode::Direct(_));
        // Passed-through sound is cut like a direct run's; encoded sound alone like a transcode.
        let coded = direct || matches!(mode, Mode::Audio { pass: true });
        // Close to the origin, reading from the start and dropping what comes before `at` is
        // as quick as a seek, and exact whatever the demuxer. A direct run seeks even there:
        // matroskademux opens with a segment that puts its first block at stream time 0 and
        // replaces it, a few pictures later, with one where stream time is the block's own
        // timestamp, as after any seek; the pictures under the first would land a block's
        // timestamp early and the first keyframe before `at`.
        let seeks = coded || stop.is_some() || at > origin.saturating_add(SEEK_LEAD);
        let timeline = timeline::Timeline::new(known_origin, at, !seeks, coded);
        let graph = pipeline::build(source, settings, mode, pick, timeline.clone())?;
        let segmenter = match mode {
            // Audio alone is cut on a grid from running time 0, so that runs starting anywhere
            // cut it at the same frames.
            Mode::Direct(_) => {
                Segmenter::keyframes_only(settings.segment).with_grid_origin(MUX_CLOCK_BASE)
            }
            Mode::Audio { .. } => {
                let segmenter = Segmenter::new(settings.segment).with_grid_origin(MUX_CLOCK_BASE);
                match &pick.cuts {
                    Some(cuts) => segmenter.with_cut_points(
                        cuts.iter()
                            .map(|d| u64::try_from(d.as_nanos() * 9 / 100_000).unwrap_or(u64::MAX))
                            .collect(),
                    ),
                    None => segmenter,
                }
            }
            Mode::Transcode => Segmenter::new(settings.segment),
        };
        let segmenter = Arc::new(Mutex::new(segmenter));

        let (feed_segmenter, feed_output) = (segmenter.clone(), output.clone());
        graph.appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    guard::guard("the appsink callback", || {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let mut segments = Vec::new();
                        {
                            let mut segmenter = feed_segmenter.lock();
                            let mut push = |buffer: &gst::BufferRef| {
                                if let Ok(map) = buffer.map_readable() {
                                    segmenter.push(map.as_slice(), &mut segments);
                                }
                            };
                            if let Some(list) = sample.buffer_list() {
                                list.iter().for_each(&mut push);
                            } else if let Some(buffer) = sample.buffer() {
                                push(buffer);
                            }
                        }
                        for segment in segments {
                            feed_output.segment(segment);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .unwrap_or_else(|| {
                        gst::element_error!(
                            sink,
                            gst::CoreError::Failed,
                            ("internal error while cutting segments")
                        );
                        Err(gst::FlowError::Error)
                    })
                })
                .build(),
        );

        let bus = graph
            .pipeline
            .bus()
            .ok_or_else(|| TranscodeError::Failed("pipeline has no bus".into()))?;
        let pipeline = graph.pipeline.clone();
        RUNNING.fetch_add(1, Ordering::AcqRel);
        std::thread::Builder::new()
            .name("hlss-bus".into())
            .spawn(move || {
                // A panic here must still stop the pipeline and report the end.
                if guard::guard("the bus thread", || {
                    watch_bus(&bus, &pipeline, &segmenter, output.as_ref())
                })
                .is_none()
                {
                    let _ = pipeline.set_state(gst::State::Null);
                    guard::guard("the end callback", || {
                        output.end(Err(TranscodeError::Failed("internal error".into())))
                    });
                }
                RUNNING.fetch_sub(1, Ordering::AcqRel);
            })
            .map_err(|err| {
                RUNNING.fetch_sub(1, Ordering::AcqRel);
                TranscodeError::Failed(format!("cannot start bus thread: {err}"))
            })?;

        let transcode = Transcode {
            pipeline: graph.pipeline,
        };
        if seeks {
            transcode.seek(&timeline, origin, stop)?;
        }
        if let Err(err) = transcode.pipeline.set_state(gst::State::Playing) {
            // The bus carries the real reason; the bus thread reports it through `end`.
            tracing::debug!("set_state(Playing) failed: {err}");
        }
        Ok(transcode)
    }

    /// Prerolls and seeks to a little before the run's start (the timeline drops the rest, once
    /// armed by the seek, so the preroll itself need not decode up to the start), going
    /// further back while the seek lands past it: MPEG-PS demuxers seek by the pack clock, which
    /// runs up to a second ahead of the pictures (a seek to 12.54 s first showed 13.50 s).
    /// Decoders can only seek once data flows, hence the preroll in PAUSED first; a preroll
    /// buffer from before a seek never reaches the segmenter (appsink hands it out only in
    /// PLAYING, after the flush has dropped it).
    fn seek(
        &self,
        timeline: &timeline::Timeline,
        origin: gst::ClockTime,
        stop: Option<gst::ClockTime>,
    ) -> Result<(), TranscodeError> {
        let _ = self.pipeline.set_state(gst::State::Paused);
        let (prerolled, _, _) = self.pipeline.state(PREROLL_TIMEOUT);
        if prerolled.is_err() {
            // A failed preroll posted its error on the bus; the bus thread reports it.
            return Ok(());
        }
        let stop_type = if stop.is_some() {
            gst::SeekType::Set
        } else {
            gst::SeekType::None
        };
        let mut lead = SEEK_LEAD;
        loop {
            let from = timeline.at().saturating_sub(lead).max(origin);
            timeline.expect_landing();
            self.pipeline
                .seek(
                    1.0,
                    gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
                    gst::SeekType::Set,
                    Some(from),
                    stop_type,
                    stop,
                )
                .map_err(|_| TranscodeError::Failed("the source cannot seek".into()))?;
            let (prerolled, _, _) = self.pipeline.state(PREROLL_TIMEOUT);
            if prerolled.is_err() || timeline.landed_in_time() || from == origin {
                return Ok(());
            }
            if lead >= MAX_SEEK_LEAD {
                tracing::warn!(
                    "a seek to {} landed late even from {from}; the segment there may differ \
                     from a run from the start",
                    timeline.at()
                );
                return Ok(());
            }
            tracing::debug!(
                "a seek to {from} landed after {}; going back further",
                timeline.at()
            );
            lead = lead.saturating_mul(4);
        }
    }

    /// Asks the pipeline to stop; the bus thread sets it to NULL and calls `Output::end`.
    pub fn stop(&self) {
        let message = gst::message::Application::new(gst::Structure::new_empty(STOP_MESSAGE));
        // Fails only if the bus is already flushing, i.e. the pipeline is stopping anyway.
        let _ = self.pipeline.post_message(message);
    }
}

impl Drop for Transcode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn clock_time(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The bus loop: waits for EOS, an error or a stop request, then tears the pipeline down.
fn watch_bus(
    bus: &gst::Bus,
    pipeline: &gst::Pipeline,
    segmenter: &Mutex<Segmenter>,
    output: &dyn Output,
) {
    use gst::MessageView;
    let result = loop {
        let Some(message) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match message.view() {
            MessageView::Eos(_) => break Ok(true),
            MessageView::Error(err) => break Err(bus_error(err)),
            MessageView::Warning(warning) => {
                tracing::warn!("GStreamer warning: {}", warning.error());
            }
            MessageView::Application(app)
                if app.structure().is_some_and(|s| s.name() == STOP_MESSAGE) =>
            {
                break Ok(false);
            }
            _ => {}
        }
    };
    if let Err(err) = pipeline.set_state(gst::State::Null) {
        tracing::warn!("could not stop pipeline: {err}");
    }
    // After NULL no streaming thread runs, so the segmenter sees no more bytes.
    if let Ok(true) = result
        && let Some(last) = segmenter.lock().finish()
    {
        output.segment(last);
    }
    output.end(result.map(|_| ()));
}

fn bus_error(err: &gst::message::Error) -> TranscodeError {
    let details = err.debug().map(|d| d.to_string()).unwrap_or_default();
    tracing::debug!("pipeline error: {} ({details})", err.error());
    classify(&err.error())
}

/// Sorts GStreamer errors into "this is not media we can play" and "something broke".
fn classify(error: &gst::glib::Error) -> TranscodeError {
    // Resource messages name the file's path on the server ("Could not open file \"/srv/…\""),
    // which a client must not learn; the kind of failure is all it needs.
    if error.kind::<gst::ResourceError>().is_some() {
        return TranscodeError::Failed("the file could not be read".into());
    }
    let reason = error.message().trim_end_matches('.').to_owned();
    let not_media = matches!(
        error.kind::<gst::StreamError>(),
        Some(
            gst::StreamError::TypeNotFound
                | gst::StreamError::CodecNotFound
                | gst::StreamError::WrongType
                | gst::StreamError::Demux
                | gst::StreamError::Format
        )
    ) || matches!(
        error.kind::<gst::CoreError>(),
        Some(gst::CoreError::MissingPlugin)
    );
    if not_media {
        TranscodeError::NotMedia(reason)
    } else {
        TranscodeError::Failed(reason)
    }
}
