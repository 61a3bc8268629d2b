//! Learns what a source holds (codecs, a duration) and where its audio and video lie, before any transcoding.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gst::glib;
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
    /// The first video stream's and the default audio stream's codecs (the ones the main
    /// rendition plays).
    pub codecs: Codecs,
    /// Every audio and subtitle track, in container order.
    pub tracks: Tracks,
}

/// A source's audio and subtitle tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    pub audio: Vec<AudioTrack>,
    pub subtitles: Vec<SubtitleTrack>,
}

impl Tracks {
    /// The audio track the main rendition plays: the first.
    pub fn default_audio(&self) -> Option<&AudioTrack> {
        self.audio.first()
    }
}

/// One audio track of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// GStreamer's stream id: how a run picks this track among the demuxer's pads.
    pub stream_id: String,
    /// The language code the container gives, as GStreamer reports it (`fr`, `und`).
    pub language: Option<String>,
    /// The track's name in the container, if any.
    pub title: Option<String>,
    pub channels: u32,
    pub codec: AudioCodec,
}

/// One subtitle track of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleTrack {
    pub stream_id: String,
    pub language: Option<String>,
    pub title: Option<String>,
    /// The caps' media type: `text/x-raw` for text, `subpicture/x-pgs` and the like for bitmaps.
    pub media_type: String,
    /// Flagged forced by the container (shown even to viewers who chose no subtitles).
    pub forced: bool,
}

impl SubtitleTrack {
    /// Text subtitles can become WebVTT; bitmaps (PGS, VobSub, DVB) cannot.
    pub fn is_text(&self) -> bool {
        self.media_type.starts_with("text/")
            || self.media_type.starts_with("application/x-ssa")
            || self.media_type.starts_with("application/x-ass")
            || self.media_type == "application/x-subtitle-vtt"
    }
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
    /// Stored picture size, before any orientation is applied.
    pub width: u32,
    pub height: u32,
    /// Pixel aspect ratio.
    pub par: (u32, u32),
    /// The orientation tag turns the picture a quarter (width and height swap on display).
    pub quarter_turn: bool,
    /// Frames per second, if the stream says (0/1 for variable rates is `None`).
    pub frame_rate: Option<(u32, u32)>,
    /// H.264 profile, constraint flags and level from the stream's configuration record.
    pub avc: Option<[u8; 3]>,
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
            // The demo's test sources, as `pipeline::build_demo` makes them.
            return Ok(Probe {
                duration: Some(DEMO_DURATION),
                origin: Duration::ZERO,
                codecs: Codecs {
                    video: Some(VideoCodec {
                        media_type: "video/x-raw".into(),
                        width: 1280,
                        height: 720,
                        par: (1, 1),
                        quarter_turn: false,
                        frame_rate: Some((30, 1)),
                        avc: None,
                        bit_depth: Some(8),
                        chroma: Some("4:2:0".into()),
                        interlaced: false,
                        oriented: false,
                    }),
                    audio: Some(AudioCodec {
                        media_type: "audio/x-raw".into(),
                        aac_lc: false,
                    }),
                },
                tracks: Tracks::default(),
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
        tracks: tracks(&info),
    })
}

/// The stream's tags' value of `T`, if set.
fn tag<T>(stream: &impl IsA<gst_pbutils::DiscovererStreamInfo>) -> Option<String>
where
    T: for<'a> gst::Tag<'a, TagType = &'a str>,
{
    let tags = stream.as_ref().tags()?;
    let value = tags.get::<T>()?;
    let value = value.get().trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// A stream's language (the Discoverer's, else its tag) and title. The Discoverer merges the
/// file's own tags into each stream's, so a title that is the file's is no track's name.
fn labels(
    stream: &impl IsA<gst_pbutils::DiscovererStreamInfo>,
    language: Option<glib::GString>,
    file_title: Option<&str>,
) -> (Option<String>, Option<String>) {
    let language = language
        .map(|l| l.to_string())
        .or_else(|| tag::<gst::tags::LanguageCode>(stream));
    let title = tag::<gst::tags::Title>(stream).filter(|t| Some(t.as_str()) != file_title);
    (language, title)
}

/// Every audio and subtitle stream the Discoverer found, in its order (the container's).
fn tracks(info: &gst_pbutils::DiscovererInfo) -> Tracks {
    // The container's stream info carries the file's own tags.
    let file_title = info
        .stream_info()
        .and_then(|container| container.tags())
        .and_then(|tags| {
            tags.get::<gst::tags::Title>()
                .map(|t| t.get().trim().to_owned())
        });
    let file_title = file_title.as_deref();
    let audio = info
        .audio_streams()
        .iter()
        .filter_map(|stream| {
            let (language, title) = labels(stream, stream.language(), file_title);
            Some(AudioTrack {
                stream_id: stream.stream_id()?.to_string(),
                language,
                title,
                channels: stream.channels(),
                codec: audio_codec(stream)?,
            })
        })
        .collect();
    let subtitles = info
        .subtitle_streams()
        .iter()
        .filter_map(|stream| {
            let caps = stream.caps()?;
            let (language, title) = labels(stream, stream.language(), file_title);
            Some(SubtitleTrack {
                stream_id: stream.stream_id()?.to_string(),
                language,
                title,
                media_type: caps.structure(0)?.name().to_string(),
                forced: false,
            })
        })
        .collect();
    Tracks { audio, subtitles }
}

fn audio_codec(stream: &gst_pbutils::DiscovererAudioInfo) -> Option<AudioCodec> {
    let caps = stream.caps()?;
    let s = caps.structure(0)?;
    let aac_lc = s.name() == "audio/mpeg"
        && s.get::<i32>("mpegversion").is_ok_and(|v| v == 4)
        && s.get::<&str>("profile").is_ok_and(|p| p == "lc");
    Some(AudioCodec {
        media_type: s.name().to_string(),
        aac_lc,
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
            // A subtitle or data track nothing decodes (WebVTT in Matroska, in 1.22) leaves the
            // audio and video playable: only a missing audio or video decoder refuses the file.
            let missing = info.missing_elements_installer_details();
            let audio_video = |detail: &glib::GString| {
                detail.contains("decoder-audio/") || detail.contains("decoder-video/")
            };
            if missing.iter().any(audio_video) || !missing.iter().all(|d| d.contains("decoder-")) {
                return Err(TranscodeError::NotMedia(format!(
                    "no GStreamer plugin can decode it ({})",
                    missing.join(", ")
                )));
            }
            tracing::debug!(
                "{uri}: no decoder for {}; played without it",
                missing.join(", ")
            );
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
        let orientation = stream.tags().and_then(|tags| {
            tags.get::<gst::tags::ImageOrientation>()
                .map(|o| o.get().to_owned())
        });
        let oriented = orientation.as_deref().is_some_and(|o| o != "rotate-0");
        let quarter_turn = orientation
            .as_deref()
            .is_some_and(|o| o.ends_with("-90") || o.ends_with("-270"));
        let interlaced = stream.is_interlaced()
            || s.get::<&str>("interlace-mode")
                .is_ok_and(|mode| mode != "progressive");
        let frame_rate = s
            .get::<gst::Fraction>("framerate")
            .ok()
            .and_then(|f| {
                Some((
                    u32::try_from(f.numer()).ok()?,
                    u32::try_from(f.denom()).ok()?,
                ))
            })
            .filter(|(n, d)| *n > 0 && *d > 0);
        // An avcC record: version, then profile, constraint flags and level; a byte stream
        // (MPEG-TS) has no record, but the parser's caps name both.
        let avc = s
            .get::<gst::Buffer>("codec_data")
            .ok()
            .and_then(|data| {
                let map = data.map_readable().ok()?;
                match map.as_slice() {
                    [1, profile, flags, level, ..] => Some([*profile, *flags, *level]),
                    _ => None,
                }
            })
            .or_else(|| {
                let profile = s.get::<&str>("profile").ok()?;
                let level = s.get::<&str>("level").ok()?;
                avc_from_names(profile, level)
            })
            .filter(|_| s.name() == "video/x-h264");
        let par = stream.par();
        let par = (
            u32::try_from(par.numer()).unwrap_or(0),
            u32::try_from(par.denom()).unwrap_or(0),
        );
        Some(VideoCodec {
            media_type: s.name().to_string(),
            width: stream.width(),
            height: stream.height(),
            par: if par.0 > 0 && par.1 > 0 { par } else { (1, 1) },
            quarter_turn,
            frame_rate,
            avc,
            bit_depth: s.get::<u32>("bit-depth-luma").ok(),
            chroma: s.get::<String>("chroma-format").ok(),
            interlaced,
            oriented,
        })
    });
    let audio = info.audio_streams().first().and_then(audio_codec);
    Codecs { video, audio }
}

/// Profile, constraint flags and level of H.264 from the names GStreamer's caps give them
/// (`high`, `4.1`), for streams without a configuration record.
fn avc_from_names(profile: &str, level: &str) -> Option<[u8; 3]> {
    let (profile_idc, flags) = match profile {
        "constrained-baseline" => (66, 0x40),
        "baseline" => (66, 0),
        "main" => (77, 0),
        "extended" => (88, 0),
        "high" => (100, 0),
        "high-10" | "high-10-intra" => (110, 0),
        "high-4:2:2" | "high-4:2:2-intra" => (122, 0),
        "high-4:4:4" | "high-4:4:4-intra" => (244, 0),
        _ => return None,
    };
    let level_idc = match level {
        "1b" => 11,
        _ => {
            let (major, minor) = level.split_once('.').unwrap_or((level, "0"));
            major
                .parse::<u8>()
                .ok()?
                .checked_mul(10)?
                .checked_add(minor.parse::<u8>().ok()?)?
        }
    };
    Some([profile_idc, flags, level_idc])
}

#[cfg(test)]
mod tests {
    use super::avc_from_names;

    #[test]
    fn h264_names_become_codec_bytes() {
        assert_eq!(avc_from_names("high", "4.1"), Some([100, 0, 41]));
        assert_eq!(
            avc_from_names("constrained-baseline", "3"),
            Some([66, 0x40, 30])
        );
        assert_eq!(avc_from_names("main", "1b"), Some([77, 0, 11]));
        assert_eq!(avc_from_names("weird", "4"), None);
    }
}
