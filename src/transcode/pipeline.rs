//! Builds the GStreamer graph: source → decode → encoders (or parsers) → mpegtsmux → appsink.

use std::sync::Arc;

use gst::prelude::*;
use parking_lot::Mutex;

use super::timeline::Timeline;
use super::{DirectAudio, Mode, Pick, TranscodeError, keyframes, picture};
use crate::config::EncoderSettings;
use crate::library::Source;

/// Output sample rate; every AAC decoder handles it and it avoids odd source rates.
const AUDIO_RATE: i32 = 48_000;

/// mpegtsmux's PCR interval in a direct run, in 90 kHz ticks. The muxer writes a PCR on a video
/// packet once this much has passed since the last one, so with the default (40 ms) which frames
/// carry one depends on where the run started (at 30 fps, every other frame from the first). One
/// tick puts a PCR on the first packet of every picture, whatever the run.
const DIRECT_PCR_INTERVAL: u32 = 1;
/// mpegtsmux's PAT and PMT interval in a direct run: as rarely as it allows (13 h). The segmenter
/// puts both at the head of every segment; repeats inside a segment would fall at times counted
/// from the run's start and make segments differ between runs.
const DIRECT_PSI_INTERVAL: u32 = u32::MAX;

pub(super) struct Graph {
    pub pipeline: gst::Pipeline,
    pub appsink: gst_app::AppSink,
}

pub(super) fn make(factory: &'static str) -> Result<gst::Element, TranscodeError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| TranscodeError::MissingElement(factory))
}

/// Builds the pipeline for `source` without starting it. Every decoded stream enters the muxer on
/// `timeline` (running time = media time - origin), so a run that seeks gives its segments the
/// same timestamps as a run from the start.
pub(super) fn build(
    source: &Source,
    settings: &EncoderSettings,
    mode: Mode,
    pick: &Pick,
    timeline: Arc<Timeline>,
) -> Result<Graph, TranscodeError> {
    let branch = Branch {
        settings: settings.clone(),
        mode,
        audio: pick.audio.clone(),
        without_audio: pick.without_audio,
        h264_level: pick.h264_level,
        timeline,
    };
    let pipeline = gst::Pipeline::new();
    let mut mux = gst::ElementFactory::make("mpegtsmux");
    if let Mode::Direct(_) = mode {
        mux = mux
            .property("pcr-interval", DIRECT_PCR_INTERVAL)
            .property("pat-interval", DIRECT_PSI_INTERVAL)
            .property("pmt-interval", DIRECT_PSI_INTERVAL);
    }
    let mux = mux
        .build()
        .map_err(|_| TranscodeError::MissingElement("mpegtsmux"))?;
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .buffer_list(true)
        .build();
    pipeline
        .add_many([&mux, appsink.upcast_ref()])
        .map_err(failed)?;
    mux.link(&appsink).map_err(failed)?;

    match (source, mode) {
        (Source::Demo, Mode::Transcode) => build_demo(&pipeline, &mux, &branch)?,
        (Source::Demo, Mode::Direct(_) | Mode::Audio { .. }) => {
            return Err(failed(
                "the demo is made on the fly: there is nothing to pass through",
            ));
        }
        (Source::File(path), _) => build_file(&pipeline, &mux, branch, path)?,
    }
    Ok(Graph { pipeline, appsink })
}

fn failed(err: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Failed(err.to_string())
}

/// How every encoding branch of one pipeline is set up.
#[derive(Clone)]
struct Branch {
    settings: EncoderSettings,
    mode: Mode,
    /// The stream id of the audio track to play; `None`: the first.
    audio: Option<String>,
    without_audio: bool,
    h264_level: Option<u8>,
    timeline: Arc<Timeline>,
}

fn build_demo(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
) -> Result<(), TranscodeError> {
    let (width, height) = (1280, 720);
    let video = gst::ElementFactory::make("videotestsrc")
        .property_from_str("pattern", "smpte")
        .build()
        .map_err(|_| TranscodeError::MissingElement("videotestsrc"))?;
    let video_caps = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", width)
                .field("height", height)
                .field("framerate", gst::Fraction::new(30, 1))
                .build(),
        )
        .build()
        .map_err(|_| TranscodeError::MissingElement("capsfilter"))?;
    // The demo ends where the start-up seek's stop position says (see `Transcode::start`).
    let audio = gst::ElementFactory::make("audiotestsrc")
        .property_from_str("wave", "sine")
        .property("freq", 440.0f64)
        .property("volume", 0.3f64)
        .property("samplesperbuffer", AUDIO_RATE / 30)
        .build()
        .map_err(|_| TranscodeError::MissingElement("audiotestsrc"))?;
    pipeline
        .add_many([&video, &video_caps, &audio])
        .map_err(failed)?;
    video.link(&video_caps).map_err(failed)?;

    // A running clock on the picture shows at a glance that seeking and segments line up;
    // the overlay lives in an optional plugin (pango), so the demo works without it.
    let video_out = match gst::ElementFactory::make("timeoverlay")
        .property_from_str("halignment", "center")
        .property_from_str("valignment", "center")
        .property("font-desc", "Sans 48")
        .build()
    {
        Ok(overlay) => {
            pipeline.add(&overlay).map_err(failed)?;
            video_caps.link(&overlay).map_err(failed)?;
            overlay
        }
        Err(_) => video_caps,
    };
    let vsink = video_branch(pipeline, mux, branch)?;
    video_out
        .static_pad("src")
        .ok_or_else(|| failed("demo video source has no src pad"))?
        .link(&vsink)
        .map_err(failed)?;
    let asink = audio_branch(pipeline, mux, branch)?;
    audio
        .static_pad("src")
        .ok_or_else(|| failed("audiotestsrc has no src pad"))?
        .link(&asink)
        .map_err(failed)?;
    Ok(())
}

/// Which decoded streams already feed an encoder; decodebin may expose several of each kind.
#[derive(Default)]
struct Linked {
    video: bool,
    audio: bool,
}

fn build_file(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: Branch,
    path: &std::path::Path,
) -> Result<(), TranscodeError> {
    let uri = gst::glib::filename_to_uri(path, None).map_err(failed)?;
    let decode = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri.as_str())
        .build()
        .map_err(|_| TranscodeError::MissingElement("uridecodebin"))?;
    let passthrough = match branch.mode {
        Mode::Direct(audio) => Some(passthrough_caps(true, audio == DirectAudio::Pass)),
        Mode::Audio { pass } => Some(passthrough_caps(false, pass)),
        Mode::Transcode => None,
    };
    if let Some(mut caps) = passthrough {
        // Autoplugging stops at the first pad whose caps match: coded streams that pass through
        // leave the demuxer as they are, everything else is decoded as usual.
        let raw: gst::Caps = decode.property("caps");
        caps.merge(raw);
        decode.set_property("caps", caps);
    }
    pipeline.add(&decode).map_err(failed)?;

    let audio_only = matches!(branch.mode, Mode::Audio { .. });
    let linked = Arc::new(Mutex::new(Linked::default()));
    let weak_pipeline = pipeline.downgrade();
    let weak_mux = mux.downgrade();
    let on_pad = linked.clone();
    decode.connect_pad_added(move |decode, pad| {
        let (Some(pipeline), Some(mux)) = (weak_pipeline.upgrade(), weak_mux.upgrade()) else {
            return;
        };
        let linked = super::guard::guard("pad-added", || {
            link_decoded(&pipeline, &mux, &branch, pad, &on_pad)
        })
        .unwrap_or_else(|| Err(TranscodeError::Failed("internal error".into())));
        if let Err(err) = linked {
            gst::element_error!(
                decode,
                gst::CoreError::Negotiation,
                ("{}", err),
                ["linking a decoded stream failed"]
            );
        }
    });
    decode.connect_no_more_pads(move |decode| {
        // Reading two flags cannot panic; nothing here needs a guard.
        let linked = linked.lock();
        if !linked.video && !linked.audio {
            gst::element_error!(
                decode,
                gst::StreamError::CodecNotFound,
                ("the file has no audio or video stream"),
                ["no decoded audio or video pad"]
            );
        } else if audio_only && !linked.audio {
            gst::element_error!(
                decode,
                gst::StreamError::CodecNotFound,
                ("the file no longer has this audio track"),
                ["no pad with the chosen stream id"]
            );
        }
    });
    Ok(())
}

/// Runs on a streaming thread when decodebin exposes a decoded stream.
fn link_decoded(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
    pad: &gst::Pad,
    linked: &Mutex<Linked>,
) -> Result<(), TranscodeError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let media = caps
        .structure(0)
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let direct = matches!(branch.mode, Mode::Direct(_));
    let audio_only = matches!(branch.mode, Mode::Audio { .. });
    // The chosen audio track by its stream id (decodebin may expose another first); the first
    // audio pad when none is chosen.
    let chosen = !branch.without_audio
        && match &branch.audio {
            Some(wanted) => pad.stream_id().is_some_and(|id| id.as_str() == wanted),
            None => true,
        };
    let mut linked = linked.lock();
    let sink = if media.starts_with("video/") && !linked.video && !audio_only {
        linked.video = true;
        branch.timeline.has_video();
        match (direct, media.as_str()) {
            (false, _) => video_branch(pipeline, mux, branch)?,
            (true, H264) => direct_video_branch(pipeline, mux, branch)?,
            (true, _) => {
                return Err(failed(
                    "a direct run needs H.264 video; this video can only be transcoded",
                ));
            }
        }
    } else if media.starts_with("audio/") && !linked.audio && chosen {
        linked.audio = true;
        let pass = matches!(branch.mode, Mode::Direct(_) | Mode::Audio { pass: true });
        if pass && media == AAC {
            direct_audio_branch(pipeline, mux, branch)?
        } else {
            audio_branch(pipeline, mux, branch)?
        }
    } else {
        // Extra tracks, subtitles: consumed so decodebin never sees not-linked.
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
            .map_err(|_| TranscodeError::MissingElement("fakesink"))?;
        pipeline.add(&sink).map_err(failed)?;
        sink.sync_state_with_parent().map_err(failed)?;
        sink.static_pad("sink")
            .ok_or_else(|| failed("fakesink has no sink pad"))?
    };
    pad.link(&sink).map_err(failed)?;
    Ok(())
}

/// Media types that pass through a direct run.
const H264: &str = "video/x-h264";
const AAC: &str = "audio/mpeg";

/// What uridecodebin hands over undecoded: H.264 in a direct run, AAC when it passes (not when
/// it is to be encoded again: an AAC profile players may lack, say).
fn passthrough_caps(video: bool, aac: bool) -> gst::Caps {
    let mut caps = gst::Caps::new_empty();
    if video {
        caps.merge(gst::Caps::new_empty_simple(H264));
    }
    if aac {
        caps.merge(gst::Caps::builder(AAC).field("mpegversion", 4i32).build());
    }
    caps
}

/// Adds `elements` to the pipeline, links them in a chain, brings them to the pipeline's state
/// and returns the first one's sink pad.
fn add_chain(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
    elements: &[gst::Element],
) -> Result<gst::Pad, TranscodeError> {
    pipeline.add_many(elements).map_err(failed)?;
    gst::Element::link_many(elements).map_err(failed)?;
    let last = elements.last().ok_or_else(|| failed("empty branch"))?;
    last.link(mux).map_err(failed)?;
    for element in elements {
        element.sync_state_with_parent().map_err(failed)?;
    }
    let sink = elements
        .first()
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| failed("branch has no sink pad"))?;
    branch.timeline.anchor(&sink);
    Ok(sink)
}

/// queue → deinterlace → videoconvert → videoflip → videoscale → capsfilter → x264enc → h264parse
/// → mux
fn video_branch(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
) -> Result<gst::Pad, TranscodeError> {
    let settings = &branch.settings;
    let capsfilter = picture::size_filter()?;
    let encoder = gst::ElementFactory::make("x264enc")
        .property_from_str("speed-preset", settings.preset.nick())
        // No B-frames and no lookahead: the first segment leaves the encoder sooner.
        .property_from_str("tune", "zerolatency")
        .property("bitrate", settings.video_kbps)
        // Keyframes come only from our force-key-unit events, so cuts land on the segment grid.
        .property("key-int-max", 0x7fff_ffffu32)
        .property("option-string", x264_options(branch.h264_level))
        .build()
        .map_err(|_| TranscodeError::MissingElement("x264enc"))?;
    let parse = gst::ElementFactory::make("h264parse")
        // SPS/PPS before every IDR, so each segment decodes on its own.
        .property("config-interval", -1i32)
        .build()
        .map_err(|_| TranscodeError::MissingElement("h264parse"))?;
    let [deinterlace, convert, flip, scale] = picture::display_chain()?;
    if let Some(scale_sink) = scale.static_pad("sink") {
        picture::follow_display_size(&scale_sink, &capsfilter, settings.max_height);
    }
    let elements = [
        make("queue")?,
        deinterlace,
        convert,
        flip,
        scale,
        capsfilter.clone(),
        encoder,
        parse,
    ];
    let sink = add_chain(pipeline, mux, branch, &elements)?;
    if let Some(src) = capsfilter.static_pad("src") {
        keyframes::force_at_boundaries(&src, gst::ClockTime::from_nseconds(segment_ns(settings)));
    }
    Ok(sink)
}

/// x264's options beyond the element's properties: no scene-cut keyframes, and the level the
/// master playlist announces.
fn x264_options(level: Option<u8>) -> String {
    match level {
        Some(level) => format!("scenecut=0:level={}.{}", level / 10, level % 10),
        None => "scenecut=0".into(),
    }
}

/// Direct video: queue → h264parse → capsfilter (Annex B, whole pictures) → mux. The parser
/// puts SPS and PPS before every IDR, so each segment decodes on its own, and turns MP4's and
/// Matroska's length-prefixed NAL units into the byte stream MPEG-TS carries.
fn direct_video_branch(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
) -> Result<gst::Pad, TranscodeError> {
    let parse = gst::ElementFactory::make("h264parse")
        .property("config-interval", -1i32)
        .build()
        .map_err(|_| TranscodeError::MissingElement("h264parse"))?;
    let annex_b = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder(H264)
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        )
        .build()
        .map_err(|_| TranscodeError::MissingElement("capsfilter"))?;
    add_chain(pipeline, mux, branch, &[make("queue")?, parse, annex_b])
}

/// Direct audio: queue → aacparse → mux, which frames raw AAC as ADTS itself.
fn direct_audio_branch(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
) -> Result<gst::Pad, TranscodeError> {
    add_chain(pipeline, mux, branch, &[make("queue")?, make("aacparse")?])
}

fn segment_ns(settings: &EncoderSettings) -> u64 {
    u64::try_from(settings.segment.as_nanos()).unwrap_or(u64::MAX)
}

/// queue → audioconvert → audioresample → capsfilter (stereo 48 kHz) → AAC → aacparse → mux
fn audio_branch(
    pipeline: &gst::Pipeline,
    mux: &gst::Element,
    branch: &Branch,
) -> Result<gst::Pad, TranscodeError> {
    let settings = &branch.settings;
    let capsfilter = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", AUDIO_RATE)
                .field("channels", 2i32)
                .build(),
        )
        .build()
        .map_err(|_| TranscodeError::MissingElement("capsfilter"))?;
    let bitrate = i32::try_from(settings.audio_kbps.saturating_mul(1000)).unwrap_or(i32::MAX);
    // avenc_aac (libav) is the better encoder; voaacenc (plugins-bad) is the fallback.
    let encoder = gst::ElementFactory::make("avenc_aac")
        .property("bitrate", bitrate)
        .build()
        .or_else(|_| {
            gst::ElementFactory::make("voaacenc")
                .property("bitrate", bitrate)
                .build()
        })
        .map_err(|_| TranscodeError::MissingElement("avenc_aac"))?;
    let elements = [
        make("queue")?,
        make("audioconvert")?,
        make("audioresample")?,
        capsfilter,
        encoder,
        make("aacparse")?,
    ];
    add_chain(pipeline, mux, branch, &elements)
}
