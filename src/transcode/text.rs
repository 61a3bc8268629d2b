//! A media file's embedded text subtitle tracks read whole: one demux-only pass that collects every text track's cues.
//!
//! `filesrc ! parsebin`; each text stream ends in an appsink that keeps its cues, every other
//! stream in a fakesink. It plays to EOS with no seek (a flushing seek on a playing pipeline
//! deadlocked on GStreamer 1.22, see `extent.rs`) and no clock, so a short file takes tens of
//! milliseconds and a long one as long as reading it from disk.
//!
//! What GStreamer 1.22's parsebin gives, and so what is read:
//! - Matroska S_TEXT/UTF8 (SubRip): `text/x-raw, format=pango-markup` from matroskademux itself,
//!   escaped only until the first tag in the track (see [`subtitles::from_pango`]).
//! - Matroska S_TEXT/ASS and S_TEXT/SSA: `application/x-ass` / `application/x-ssa`, taken before
//!   parsebin plugs ssaparse, whose Pango output drops the italic, bold and underline switches
//!   that a sidecar ASS file keeps (see [`subtitles::from_ass_event`]).
//! - MP4 mov_text (tx3g): `text/x-raw, format=utf8` from qtdemux, plain text; qtdemux drops the
//!   sample's style records, so italics there are lost.
//! - Not read: Matroska WebVTT (`D_WEBVTT/SUBTITLES` as ffmpeg writes it, or `S_TEXT/WEBVTT`),
//!   which matroskademux 1.22 does not know and exposes as `application/x-subtitle-unknown`
//!   (the Discoverer gives it no stream id), and bitmap subtitles (`subpicture/*`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gst::prelude::*;
use parking_lot::Mutex;

use super::guard::guard;
use super::pipeline::make;
use super::{TranscodeError, classify};
use crate::subtitles::{self, Cue, MAX_CUES};

/// Most text a track may hold, in payload bytes: a 3-hour film's SubRip is about 100 kB. With
/// [`MAX_CUES`] it bounds what a hostile file can make a track take (about 10 MB).
pub const MAX_TRACK_BYTES: usize = 4 << 20;
/// Most text tracks a file may have (a DVD-like release has a few dozen at most).
pub const MAX_TEXT_TRACKS: usize = 64;
/// How long a cue whose buffer has no duration is shown when no later cue ends it sooner. Text
/// streams carry their end as a duration; one without is a muxer that dropped it, and a cue left
/// on screen until a line a minute later is worse than one that goes after a few seconds.
pub const OPEN_CUE_SPAN: Duration = Duration::from_secs(5);

/// One embedded text track's cues, in media time (GStreamer stream time: the same space as
/// `Probe::origin` and seeks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextTrack {
    /// The stream id the demuxer gives the track, which is what the Discoverer reports as
    /// `DiscovererStreamInfo::stream_id` for it when it is given the file's URI
    /// (`glib::filename_to_uri` of the same path). Empty if the demuxer gave none.
    pub stream_id: String,
    /// The track's language as its tags say (`en`, `fr`, `und`; GStreamer turns Matroska's
    /// three letters into ISO 639-1 where there is one). Read here because the Discoverer's is
    /// unreliable for subtitles on 1.22: it finished before the tags of a sparse text stream
    /// arrived in about one run of six (seen with a Matroska file here).
    pub language: Option<String>,
    /// The track's name (Matroska's track Name: "English SDH", "Forced"), if it has one.
    pub title: Option<String>,
    /// Sorted by start; cues without visible text or with an end not after their start dropped.
    pub cues: Vec<Cue>,
}

/// Every embedded text track of the file at `path` (SubRip, ASS/SSA as text, MP4 timed text;
/// not WebVTT in Matroska, which GStreamer 1.22 cannot demux, nor bitmap subtitles), read to the
/// end, in the order the demuxer exposes them (the container's). A file without text tracks is
/// read to its end too (demuxed, never decoded) and gives an empty list: call this for files the
/// probe says have subtitle streams. A track over [`MAX_CUES`] cues or [`MAX_TRACK_BYTES`], or
/// over [`MAX_TEXT_TRACKS`] tracks, makes it [`TranscodeError::NotMedia`]. Blocking (call off the
/// async runtime); gives up after `limit` with [`TranscodeError::Failed`].
pub fn extract_text(path: &Path, limit: Duration) -> Result<Vec<TextTrack>, TranscodeError> {
    guard("the text extraction", || extract(path, limit)).unwrap_or_else(|| {
        Err(TranscodeError::Failed(
            "internal error while reading subtitles".into(),
        ))
    })
}

/// How a text stream's buffers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// `text/x-raw, format=pango-markup`.
    Pango,
    /// `text/x-raw, format=utf8` (or any other text/x-raw).
    Plain,
    /// `application/x-ass` and `application/x-ssa`: one Matroska event per buffer.
    AssEvent,
}

impl Markup {
    fn of(caps: &gst::CapsRef) -> Option<Markup> {
        let s = caps.structure(0)?;
        match s.name().as_str() {
            "text/x-raw" if s.get::<&str>("format") == Ok("pango-markup") => Some(Markup::Pango),
            "text/x-raw" => Some(Markup::Plain),
            "application/x-ass" | "application/x-ssa" => Some(Markup::AssEvent),
            _ => None,
        }
    }

    fn payload(self, text: &str) -> String {
        match self {
            Markup::Pango => subtitles::from_pango(text),
            Markup::Plain => subtitles::from_plain(text),
            Markup::AssEvent => subtitles::from_ass_event(text),
        }
    }
}

/// A cue as its buffer had it: the end unknown when the buffer had no duration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    start: Duration,
    end: Option<Duration>,
    text: String,
}

/// One text stream's collected cues.
struct Track {
    markup: Markup,
    stream_id: Option<String>,
    language: Option<String>,
    title: Option<String>,
    cues: Vec<Pending>,
    /// Charged against [`MAX_TRACK_BYTES`].
    bytes: usize,
}

/// What the streaming thread collects, for the caller once the pipeline is stopped.
#[derive(Default)]
struct Collected {
    tracks: Vec<Track>,
    /// The first reason the extraction failed that the bus does not tell (a limit, a stream that
    /// could not be linked); it wins over the bus's error, which is only its consequence.
    failure: Option<TranscodeError>,
}

impl Collected {
    fn fail(&mut self, why: TranscodeError) {
        self.failure.get_or_insert(why);
    }
}

fn extract(path: &Path, limit: Duration) -> Result<Vec<TextTrack>, TranscodeError> {
    let deadline = Instant::now() + limit;
    gst::init().map_err(|err| TranscodeError::Failed(err.to_string()))?;
    for factory in ["appsink", "fakesink"] {
        if gst::ElementFactory::find(factory).is_none() {
            return Err(TranscodeError::MissingElement(factory));
        }
    }
    let collected = Arc::new(Mutex::new(Collected::default()));
    let pipeline = build(path, &collected)?;
    let result = run(&pipeline, deadline, limit);
    // NULL stops the streaming thread: nothing touches `collected` after this.
    let _ = pipeline.set_state(gst::State::Null);
    let collected = std::mem::take(&mut *collected.lock());
    if let Some(failure) = collected.failure {
        return Err(failure);
    }
    result?;
    Ok(collected
        .tracks
        .into_iter()
        .map(|track| TextTrack {
            stream_id: track.stream_id.unwrap_or_default(),
            language: track.language,
            title: track.title,
            cues: finish(track.cues),
        })
        .collect())
}

fn failed(err: impl std::fmt::Display) -> TranscodeError {
    TranscodeError::Failed(err.to_string())
}

/// `filesrc ! parsebin`, with every pad parsebin adds linked by [`link`].
fn build(path: &Path, collected: &Arc<Mutex<Collected>>) -> Result<gst::Pipeline, TranscodeError> {
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let parse = make("parsebin")?;
    pipeline.add_many([&src, &parse]).map_err(failed)?;
    src.link(&parse).map_err(failed)?;
    // ASS/SSA stays as the demuxer gives it rather than going through ssaparse, which drops
    // the italic, bold and underline switches.
    parse.connect("autoplug-continue", false, |values| {
        let ass = guard("the text extraction's autoplug-continue", || {
            let caps = values.get(2)?.get::<gst::Caps>().ok()?;
            Some(Markup::of(&caps) == Some(Markup::AssEvent))
        });
        Some((!matches!(ass, Some(Some(true)))).to_value())
    });
    let weak = pipeline.downgrade();
    let collected = collected.clone();
    parse.connect_pad_added(move |parse, pad| {
        let Some(pipeline) = weak.upgrade() else {
            return;
        };
        let linked = guard("the text extraction's pad-added", || {
            link(&pipeline, pad, &collected)
        })
        .unwrap_or_else(|| Err(TranscodeError::Failed("internal error".into())));
        if let Err(err) = linked {
            // A text stream left out would be a track silently missing: stop here.
            let message = err.to_string();
            collected.lock().fail(err);
            gst::element_error!(parse, gst::CoreError::Negotiation, ("{}", message));
        }
    });
    Ok(pipeline)
}

/// Ends `pad` in an appsink that collects its cues if it is text, else in a fakesink.
fn link(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    collected: &Arc<Mutex<Collected>>,
) -> Result<(), TranscodeError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let sink = match Markup::of(&caps) {
        Some(markup) => text_sink(pad, markup, collected)?,
        None => make("fakesink")?,
    };
    // Neither sink waits for a preroll: the pipeline goes to PLAYING at once, and a sparse
    // text stream cannot hold the others (all on the demuxer's one thread) in PAUSED.
    sink.set_property("sync", false);
    sink.set_property("async", false);
    pipeline.add(&sink).map_err(failed)?;
    sink.sync_state_with_parent().map_err(failed)?;
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| failed("a sink has no pad"))?;
    pad.link(&sink_pad).map_err(failed)?;
    Ok(())
}

/// An appsink that adds each buffer on its pad to a new track of `collected`.
fn text_sink(
    pad: &gst::Pad,
    markup: Markup,
    collected: &Arc<Mutex<Collected>>,
) -> Result<gst::Element, TranscodeError> {
    let index = {
        let mut collected = collected.lock();
        if collected.tracks.len() >= MAX_TEXT_TRACKS {
            return Err(TranscodeError::NotMedia(format!(
                "over {MAX_TEXT_TRACKS} text tracks"
            )));
        }
        collected.tracks.push(Track {
            markup,
            stream_id: pad.stream_id().map(|id| id.to_string()),
            language: None,
            title: None,
            cues: Vec::new(),
            bytes: 0,
        });
        collected.tracks.len() - 1
    };
    let sink = gst_app::AppSink::builder().build();
    let tagged = collected.clone();
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| failed("appsink has no pad"))?;
    sink_pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        if let Some(gst::EventView::Tag(tag)) = info.event().map(|e| e.view()) {
            guard("the text extraction's tag probe", || {
                if let Some(track) = tagged.lock().tracks.get_mut(index) {
                    read_tags(track, tag.tag());
                }
            });
        }
        gst::PadProbeReturn::Ok
    });
    let collected = collected.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let kept = guard("the text extraction's appsink", || {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let mut collected = collected.lock();
                    let Some(track) = collected.tracks.get_mut(index) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    if track.stream_id.is_none() {
                        track.stream_id = sink
                            .static_pad("sink")
                            .and_then(|pad| pad.stream_id())
                            .map(|id| id.to_string());
                    }
                    let over = add(track, &sample).err();
                    match over {
                        Some(why) => {
                            collected.fail(why);
                            Err(gst::FlowError::Error)
                        }
                        None => Ok(gst::FlowSuccess::Ok),
                    }
                });
                kept.unwrap_or_else(|| {
                    collected.lock().fail(TranscodeError::Failed(
                        "internal error while reading subtitles".into(),
                    ));
                    Err(gst::FlowError::Error)
                })
            })
            .build(),
    );
    Ok(sink.upcast())
}

/// Keeps the language and title `tags` give the stream (the first of each). Global tags, which
/// demuxers send down every stream, are the file's: its title is not the track's.
fn read_tags(track: &mut Track, tags: &gst::TagListRef) {
    if tags.scope() != gst::TagScope::Stream {
        return;
    }
    if track.language.is_none() {
        track.language = tags
            .get::<gst::tags::LanguageCode>()
            .map(|code| code.get().to_owned());
    }
    if track.title.is_none() {
        track.title = tags.get::<gst::tags::Title>().map(|t| t.get().to_owned());
    }
}

/// Adds `sample`'s buffer to `track` as a cue in stream time; an error when the track is over
/// its limits.
fn add(track: &mut Track, sample: &gst::Sample) -> Result<(), TranscodeError> {
    let (Some(buffer), Some(segment)) = (sample.buffer(), sample.segment()) else {
        return Ok(());
    };
    let Some(segment) = segment.downcast_ref::<gst::ClockTime>() else {
        return Ok(());
    };
    let Some(start) = buffer.pts().and_then(|pts| segment.to_stream_time(pts)) else {
        return Ok(());
    };
    let end = buffer
        .pts()
        .zip(buffer.duration())
        .and_then(|(pts, duration)| segment.to_stream_time(pts.saturating_add(duration)));
    let Ok(map) = buffer.map_readable() else {
        return Ok(());
    };
    let too_much = || {
        TranscodeError::NotMedia(format!(
            "a text track holds over {} MiB of text",
            MAX_TRACK_BYTES >> 20
        ))
    };
    if track.cues.len() >= MAX_CUES {
        return Err(TranscodeError::NotMedia(format!(
            "a text track holds over {MAX_CUES} cues"
        )));
    }
    // Checked on the raw bytes too, so that a huge buffer is not converted first.
    if track.bytes.saturating_add(map.len()) > MAX_TRACK_BYTES {
        return Err(too_much());
    }
    let text = track
        .markup
        .payload(&String::from_utf8_lossy(map.as_slice()));
    track.bytes = track.bytes.saturating_add(text.len());
    if track.bytes > MAX_TRACK_BYTES {
        return Err(too_much());
    }
    let time = |t: gst::ClockTime| Duration::from_nanos(t.nseconds());
    track.cues.push(Pending {
        start: time(start),
        end: end.map(time),
        text,
    });
    Ok(())
}

/// Plays `pipeline` to its end, an error or `deadline`.
fn run(pipeline: &gst::Pipeline, deadline: Instant, limit: Duration) -> Result<(), TranscodeError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| failed("pipeline has no bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The bus says why; read it below.
        tracing::debug!("the text extraction pipeline did not start");
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TranscodeError::Failed(format!(
                "reading the subtitles took over {} s",
                limit.as_secs_f64()
            )));
        }
        let timeout = gst::ClockTime::from_nseconds(u64::try_from(left.as_nanos()).unwrap_or(0));
        let Some(message) =
            bus.timed_pop_filtered(timeout, &[gst::MessageType::Eos, gst::MessageType::Error])
        else {
            continue;
        };
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(err) => return Err(classify(&err.error())),
            _ => {}
        }
    }
}

/// The cues of a track: sorted by start, a cue without an end ended by the next later start
/// (at most [`OPEN_CUE_SPAN`] after its own), then those without visible text or time dropped.
/// Ends are given before the empty cues go: MP4 timed text clears the screen with an empty
/// sample.
fn finish(mut pending: Vec<Pending>) -> Vec<Cue> {
    pending.sort_by_key(|cue| cue.start);
    // Walking back, the first start after the current one (equal starts share it).
    let mut next_start: Option<Duration> = None;
    let mut cues = Vec::with_capacity(pending.len());
    for (i, cue) in pending.iter().enumerate().rev() {
        if let Some(after) = pending.get(i + 1)
            && after.start > cue.start
        {
            next_start = Some(after.start);
        }
        let open_end = cue.start.saturating_add(OPEN_CUE_SPAN);
        let end = cue
            .end
            .unwrap_or_else(|| next_start.map_or(open_end, |next| next.min(open_end)));
        if end > cue.start && subtitles::has_text(&cue.text) {
            cues.push(Cue {
                start: cue.start,
                end,
                text: cue.text.clone(),
            });
        }
    }
    cues.reverse();
    cues.sort_by_key(|cue| (cue.start, cue.end));
    cues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn pending(start: u64, end: Option<u64>, text: &str) -> Pending {
        Pending {
            start: ms(start),
            end: end.map(ms),
            text: text.into(),
        }
    }

    #[test]
    fn open_cues_end_at_the_next_start_or_after_a_while() {
        let cues = finish(vec![
            pending(3000, None, "second"),
            pending(1000, None, "first"),
            pending(3000, Some(3500), "beside"),
            // An empty sample clears the screen: it ends the cue before, then goes.
            pending(4000, None, ""),
            pending(20_000, None, "last"),
            pending(30_000, Some(30_000), "no time"),
        ]);
        let got: Vec<(u64, u64, &str)> = cues
            .iter()
            .map(|c| {
                (
                    c.start.as_millis() as u64,
                    c.end.as_millis() as u64,
                    c.text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1000, 3000, "first"),
                (3000, 3500, "beside"),
                (3000, 4000, "second"),
                (20_000, 25_000, "last"),
            ]
        );
    }

    fn sample(
        pts: u64,
        duration: Option<u64>,
        text: &str,
        segment: &gst::FormattedSegment<gst::ClockTime>,
    ) -> gst::Sample {
        let mut buffer = gst::Buffer::from_slice(text.as_bytes().to_vec());
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts));
        b.set_duration(duration.map(gst::ClockTime::from_mseconds));
        gst::Sample::builder()
            .buffer(&buffer)
            .segment(segment)
            .build()
    }

    fn track(markup: Markup) -> Track {
        Track {
            markup,
            stream_id: None,
            language: None,
            title: None,
            cues: Vec::new(),
            bytes: 0,
        }
    }

    #[test]
    fn buffers_become_cues_in_stream_time() {
        gst::init().unwrap();
        // A segment whose buffers run from 10 s while their stream time runs from 0.
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        segment.set_start(gst::ClockTime::from_seconds(10));
        segment.set_time(gst::ClockTime::ZERO);
        let mut pango = track(Markup::Pango);
        add(
            &mut pango,
            &sample(12_500, Some(1500), "a &amp; <i>b</i>", &segment),
        )
        .unwrap();
        add(&mut pango, &sample(14_000, None, "open", &segment)).unwrap();
        assert_eq!(
            pango.cues,
            [
                pending(2500, Some(4000), "a &amp; <i>b</i>"),
                pending(4000, None, "open")
            ]
        );
        let mut plain = track(Markup::Plain);
        add(&mut plain, &sample(10_000, Some(1), "<i>\r\n", &segment)).unwrap();
        assert_eq!(plain.cues[0].text, "&lt;i&gt;");
    }

    #[test]
    fn a_track_over_its_limits_is_refused() {
        gst::init().unwrap();
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        let mut many = track(Markup::Plain);
        many.cues = vec![pending(0, None, ""); MAX_CUES];
        let refused = add(&mut many, &sample(0, None, "one more", &segment));
        assert!(
            matches!(refused, Err(TranscodeError::NotMedia(_))),
            "{refused:?}"
        );

        let mut long = track(Markup::Plain);
        let text = "x".repeat(64 << 10);
        for at in 0..(MAX_TRACK_BYTES / text.len()) as u64 {
            add(&mut long, &sample(at, None, &text, &segment)).unwrap();
        }
        let refused = add(&mut long, &sample(0, None, &text, &segment));
        assert!(
            matches!(refused, Err(TranscodeError::NotMedia(_))),
            "{refused:?}"
        );
    }

    // Real files, made with ffmpeg and read back.

    use std::path::PathBuf;
    use std::process::Command;

    const LIMIT: Duration = Duration::from_secs(20);

    /// Whether ffmpeg and the GStreamer elements these tests use are here; says why not.
    fn tools_present() -> bool {
        let ffmpeg = Command::new("ffmpeg")
            .args(["-nostdin", "-version"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !ffmpeg {
            eprintln!("skipped: ffmpeg is not installed");
            return false;
        }
        gst::init().expect("GStreamer");
        let elements = [
            "parsebin",
            "matroskademux",
            "qtdemux",
            "appsink",
            "fakesink",
        ];
        if let Some(missing) = elements
            .into_iter()
            .find(|e| gst::ElementFactory::find(e).is_none())
        {
            eprintln!("skipped: GStreamer element {missing} is missing");
            return false;
        }
        true
    }

    const ENG_SRT: &str = "1\n00:00:00,500 --> 00:00:01,500\nFish & chips <3\n\n\
                           2\n00:00:01,500 --> 00:00:02,250\nHello <i>world</i>\n\n\
                           3\n00:00:02,500 --> 00:00:04,000\n1 < 2 & \"quotes\"\nsecond line\n";
    const FRE_SRT: &str = "1\n00:00:01,000 --> 00:00:03,000\nBonjour le <b>monde</b>\n\n\
                           2\n00:00:03,000 --> 00:00:04,500\n{\\an8}En haut\n";
    const ASS: &str = "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\n\
        Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
        Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n\
        [Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
        Dialogue: 0,0:00:01.00,0:00:03.50,Default,,0,0,0,,{\\i1}Penché{\\i0} & plain\\Nline two\n";
    const VTT: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nweb <i>vtt</i>\n";

    /// The English track's cues, as (start ms, end ms, payload), in the SubRip file's time.
    const ENG_CUES: [(u64, u64, &str); 3] = [
        (500, 1500, "Fish &amp; chips &lt;3"),
        (1500, 2250, "Hello <i>world</i>"),
        (2500, 4000, "1 &lt; 2 &amp; \"quotes\"\nsecond line"),
    ];

    /// Writes `files` into `dir`, then runs ffmpeg with 5 s of 160x120 H.264 and AAC as its
    /// first two inputs, then `args` (split at spaces) and `out` (in `dir`).
    fn make(dir: &Path, files: &[(&str, &str)], args: &str, out: &str) -> PathBuf {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let path = dir.join(out);
        let status = Command::new("ffmpeg")
            .current_dir(dir)
            .args(["-nostdin", "-v", "error", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=25:duration=5",
            ])
            .args(["-f", "lavfi", "-i", "sine=duration=5"])
            .args(args.split_whitespace())
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success(), "ffmpeg could not make {out}");
        path
    }

    /// Where ffprobe says the video starts: ffmpeg delays the video and subtitles of a Matroska
    /// file by the AAC encoder's priming (23 ms), so a cue shows that long after its SubRip time.
    fn video_start(path: &Path) -> Duration {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=start_time", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        Duration::from_secs_f64(seconds)
    }

    /// The stream ids the Discoverer gives the subtitle streams of `path`, as the probe runs it.
    fn discovered(path: &Path) -> Vec<Option<String>> {
        use gst_pbutils::prelude::*;
        let uri = gst::glib::filename_to_uri(path, None).unwrap();
        let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
        let info = discoverer.discover_uri(&uri).unwrap();
        let streams = info.subtitle_streams();
        streams
            .iter()
            .map(|s| s.stream_id().map(|id| id.to_string()))
            .collect()
    }

    /// The tracks' stream ids as [`discovered`] gives them.
    fn ids(tracks: &[TextTrack]) -> Vec<Option<String>> {
        tracks.iter().map(|t| Some(t.stream_id.clone())).collect()
    }

    /// Checks `cues` against `expected` (SubRip times shifted by `shift`) within 1 ms.
    fn assert_cues(cues: &[Cue], expected: &[(u64, u64, &str)], shift: Duration) {
        let texts: Vec<&str> = cues.iter().map(|c| c.text.as_str()).collect();
        let wanted: Vec<&str> = expected.iter().map(|e| e.2).collect();
        assert_eq!(texts, wanted);
        for (cue, &(start, end, _)) in cues.iter().zip(expected) {
            for (got, want) in [(cue.start, start), (cue.end, end)] {
                let want = ms(want) + shift;
                let off = got.abs_diff(want);
                assert!(off <= ms(1), "{:?}: {got:?} is not {want:?}", cue.text);
            }
        }
    }

    fn timed(path: &Path) -> Vec<TextTrack> {
        let started = Instant::now();
        let tracks = extract_text(path, LIMIT).unwrap();
        eprintln!(
            "{}: {} text tracks in {:.1?}",
            path.file_name().unwrap().to_string_lossy(),
            tracks.len(),
            started.elapsed()
        );
        tracks
    }

    #[test]
    fn subrip_and_ass_in_matroska() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let files = [("eng.srt", ENG_SRT), ("fre.srt", FRE_SRT), ("c.ass", ASS)];
        let args = "-i eng.srt -i fre.srt -i c.ass -map 0 -map 1 -map 2 -map 3 -map 4 \
                    -c:s:0 srt -c:s:1 srt -c:s:2 ass -metadata:s:s:0 language=eng \
                    -metadata:s:s:1 language=fre -metadata:s:s:1 title=Forced -metadata title=Film";
        let path = make(dir.path(), &files, args, "film.mkv");
        let tracks = timed(&path);
        assert_eq!(ids(&tracks), discovered(&path));
        let tags: Vec<(Option<&str>, Option<&str>)> = tracks
            .iter()
            .map(|t| (t.language.as_deref(), t.title.as_deref()))
            .collect();
        assert_eq!(
            tags,
            [
                (Some("en"), None),
                (Some("fr"), Some("Forced")),
                (Some("und"), None)
            ]
        );

        let shift = video_start(&path);
        assert!(shift < ms(40), "ffmpeg shifted the video by {shift:?}");
        assert_cues(&tracks[0].cues, &ENG_CUES, shift);
        let fre = [
            (1000, 3000, "Bonjour le <b>monde</b>"),
            (3000, 4500, "En haut"),
        ];
        assert_cues(&tracks[1].cues, &fre, shift);
        let ass = [(1000, 3500, "<i>Penché</i> &amp; plain\nline two")];
        assert_cues(&tracks[2].cues, &ass, shift);
    }

    #[test]
    fn timed_text_in_mp4() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let args = "-i eng.srt -map 0 -map 1 -map 2 -c:s mov_text";
        let path = make(dir.path(), &[("eng.srt", ENG_SRT)], args, "film.mp4");
        let tracks = timed(&path);
        assert_eq!(tracks.len(), 1);
        assert_eq!(ids(&tracks), discovered(&path));
        // qtdemux gives plain text: the italic (a style record in MP4) is gone.
        let mut expected = ENG_CUES;
        expected[1].2 = "Hello world";
        assert_cues(&tracks[0].cues, &expected, video_start(&path));
        let late = extract_text(&path, Duration::ZERO);
        assert!(matches!(late, Err(TranscodeError::Failed(_))), "{late:?}");
    }

    #[test]
    fn a_file_without_text_gives_no_track() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = make(dir.path(), &[], "", "plain.mkv");
        let started = Instant::now();
        assert_eq!(extract_text(&path, LIMIT), Ok(Vec::new()));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn webvtt_in_matroska_is_not_read_on_gstreamer_1_22() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let files = [("eng.srt", ENG_SRT), ("d.vtt", VTT)];
        let args = "-i eng.srt -i d.vtt -map 0 -map 1 -map 2 -map 3 -c:s:0 srt -c:s:1 webvtt";
        let path = make(dir.path(), &files, args, "vtt.mkv");
        let tracks = timed(&path);
        // matroskademux exposes it as application/x-subtitle-unknown, without a stream id for
        // the Discoverer; the SubRip track beside it is read as ever.
        assert_eq!(tracks.len(), 1);
        assert_eq!(discovered(&path), [ids(&tracks)[0].clone(), None]);
        assert_eq!(tracks[0].cues.len(), ENG_CUES.len());
    }

    #[test]
    fn what_is_not_media_is_refused() {
        if !tools_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.mkv");
        std::fs::write(&garbage, [0x5a_u8; 64 * 1024]).unwrap();
        let started = Instant::now();
        let refused = extract_text(&garbage, LIMIT);
        assert!(
            matches!(refused, Err(TranscodeError::NotMedia(_))),
            "{refused:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let missing = extract_text(&dir.path().join("missing.mkv"), LIMIT);
        assert!(
            matches!(missing, Err(TranscodeError::Failed(_))),
            "{missing:?}"
        );
    }
}
