//! Writes a file's master playlist (RFC 8216 section 4.4.6): one variant, its codecs and bit rates, and a group per alternate audio and subtitle rendition.

use std::sync::atomic::Ordering;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, MasterPlaylist, Resolution, VariantStream,
    WRITE_OPT_FLOAT_PRECISION,
};

use super::urls::{Carried, Leaf, Media};
use crate::config::EncoderSettings;
use crate::library::language::Language;
use crate::stream::{self, Delivery, Opening, Subtitles};

/// Bytes on the wire per byte of audio and video: MPEG-TS packet and PES headers, PAT/PMT and
/// PCR (about 5 % on video at a few Mb/s, more on audio: 10 % covers both).
const TS_OVERHEAD: f64 = 1.10;
/// What x264enc's constant-bit-rate mode lets the buffer hold (its `vbv-buf-capacity`
/// default): a segment of `T` seconds carries at most `(T + this) x` the bit rate.
const ENCODER_BUFFER_SECS: f64 = 0.6;
/// A passed-through source's peak over its average when its keyframes' positions are unknown
/// (MPEG-TS, FLV, fragmented MP4, Matroska without Cues): a guess.
const DIRECT_PEAK_OVER_AVERAGE: f64 = 2.0;
const AUDIO_GROUP: &str = "audio";
const SUBTITLE_GROUP: &str = "subs";

/// The master playlist of a file opened as `opening`. URIs are relative (media playlists lie
/// beside it) and carry the viewer's `session`.
pub fn render(opening: &Opening, settings: &EncoderSettings, carried: Carried<'_>) -> String {
    let query = carried.query();
    WRITE_OPT_FLOAT_PRECISION.store(3, Ordering::Relaxed);
    let audio = audio_renditions(opening, settings, &query);
    let subtitles = if opening.plan.is_vod() {
        subtitle_renditions(opening, &query)
    } else {
        Vec::new()
    };
    let mut variant = variant(opening, settings);
    variant.uri = format!("{}{query}", Leaf::Playlist(Media::Main).name());
    variant.audio = (!audio.is_empty()).then(|| AUDIO_GROUP.to_owned());
    variant.subtitles = (!subtitles.is_empty()).then(|| SUBTITLE_GROUP.to_owned());
    let playlist = MasterPlaylist {
        version: Some(3),
        independent_segments: true,
        alternatives: audio.into_iter().chain(subtitles).collect(),
        variants: vec![variant],
        ..MasterPlaylist::default()
    };
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = playlist.write_to(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The variant's codecs, size, rate and bit rates.
fn variant(opening: &Opening, settings: &EncoderSettings) -> VariantStream {
    let probe = opening.probe.as_ref();
    let has_audio = probe.is_none_or(|p| p.codecs.audio.is_some());
    let source_video = probe.and_then(|p| p.codecs.video.as_ref());
    let frame_rate = source_video
        .and_then(|v| v.frame_rate)
        .map(|(n, d)| f64::from(n) / f64::from(d));
    let audio_bps = f64::from(settings.audio_kbps) * 1000.0;
    let (video_codec, resolution, average, peak) = match &opening.delivery {
        Delivery::Direct { video, .. } => {
            let video = source_video.filter(|_| *video);
            let codec = video.and_then(|v| v.avc).map(avc1);
            let resolution = video.map(|v| (v.width, v.height));
            let seconds = probe
                .and_then(|p| p.duration)
                .map_or(0.0, |d| d.as_secs_f64());
            let average = match opening.file_len {
                Some(len) if seconds > 0.0 => len as f64 * 8.0 / seconds,
                _ => f64::from(settings.video_kbps) * 1000.0,
            };
            (
                codec,
                resolution,
                average * TS_OVERHEAD,
                // The file's own peak where its keyframe positions say it, else a guess.
                opening
                    .direct_peak
                    .map_or(average * DIRECT_PEAK_OVER_AVERAGE, |peak| {
                        peak as f64 * TS_OVERHEAD
                    }),
            )
        }
        Delivery::Transcode(_) => {
            let encoded = stream::encoded_video(opening, settings);
            let profile = crate::transcode::encoded_profile(settings.preset.nick());
            let codec = encoded.map(|v| avc1([profile[0], profile[1], v.level]));
            let video_bps = if encoded.is_some() || probe.is_none() {
                f64::from(settings.video_kbps) * 1000.0
            } else {
                0.0
            };
            let audio = if has_audio { audio_bps } else { 0.0 };
            let target = settings.segment.as_secs_f64().max(0.5);
            let peak = video_bps * (target + ENCODER_BUFFER_SECS) / target + audio;
            let resolution = encoded.map(|v| v.size);
            (
                codec,
                resolution,
                (video_bps + audio) * TS_OVERHEAD,
                peak * TS_OVERHEAD,
            )
        }
    };
    let codecs: Vec<String> = video_codec
        .into_iter()
        .chain(has_audio.then(|| "mp4a.40.2".to_owned()))
        .collect();
    VariantStream {
        bandwidth: peak.ceil() as u64,
        average_bandwidth: Some(average.ceil() as u64),
        codecs: (!codecs.is_empty()).then(|| codecs.join(",")),
        resolution: resolution.map(|(width, height)| Resolution {
            width: u64::from(width),
            height: u64::from(height),
        }),
        frame_rate: frame_rate.filter(|_| resolution.is_some()),
        ..VariantStream::default()
    }
}

/// RFC 6381's name of H.264 with these profile, constraint flags and level bytes.
fn avc1(bytes: [u8; 3]) -> String {
    format!("avc1.{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2])
}

/// One EXT-X-MEDIA per audio track when a file has several, each fetched on its own beside the
/// variant's picture (see `Opening::audio_renditions`).
fn audio_renditions(
    opening: &Opening,
    settings: &EncoderSettings,
    query: &str,
) -> Vec<AlternativeMedia> {
    let mut names = Names::default();
    opening
        .audio_renditions()
        .iter()
        .enumerate()
        .map(|(n, track)| {
            let language = track.language.as_deref().and_then(Language::parse);
            let name = track
                .title
                .clone()
                .or_else(|| language.as_ref().map(|l| l.name.to_owned()))
                .unwrap_or_else(|| format!("Audio {}", n + 1));
            // Passed through, the track keeps its channels; encoded, it is stereo.
            let channels = if opening.audio_passes(n, settings) {
                track.channels.max(1)
            } else {
                2
            };
            AlternativeMedia {
                media_type: AlternativeMediaType::Audio,
                uri: Some(format!("{}{query}", Leaf::Playlist(Media::Audio(n)).name())),
                group_id: AUDIO_GROUP.to_owned(),
                language: language.map(|l| l.tag),
                name: names.unique(name),
                default: n == 0,
                autoselect: true,
                channels: Some(channels.to_string()),
                ..AlternativeMedia::default()
            }
        })
        .collect()
}

/// One EXT-X-MEDIA per text subtitle track, embedded or beside the file.
fn subtitle_renditions(opening: &Opening, query: &str) -> Vec<AlternativeMedia> {
    let mut names = Names::default();
    opening
        .subtitles
        .iter()
        .enumerate()
        .map(|(n, subtitles)| {
            let (language, title, forced) = match subtitles {
                Subtitles::Embedded(track) => (
                    track.language.as_deref().and_then(Language::parse),
                    track.title.clone(),
                    track.forced,
                ),
                Subtitles::Sidecar(sidecar) => (
                    sidecar.language.clone(),
                    None,
                    sidecar.label.to_ascii_lowercase().contains("forced"),
                ),
            };
            let label = match subtitles {
                Subtitles::Sidecar(sidecar) if !sidecar.label.is_empty() => {
                    format!(" ({})", sidecar.label)
                }
                _ => String::new(),
            };
            let name = title
                .or_else(|| language.as_ref().map(|l| format!("{}{label}", l.name)))
                .unwrap_or_else(|| format!("Subtitles {}{label}", n + 1));
            AlternativeMedia {
                media_type: AlternativeMediaType::Subtitles,
                uri: Some(format!("{}{query}", Leaf::Subtitles(n).name())),
                group_id: SUBTITLE_GROUP.to_owned(),
                language: language.map(|l| l.tag),
                name: names.unique(name),
                default: false,
                autoselect: true,
                forced,
                ..AlternativeMedia::default()
            }
        })
        .collect()
}

/// NAMEs within a group must differ (RFC 8216 4.4.6.1): a repeat gets a number.
#[derive(Default)]
struct Names(Vec<String>);

impl Names {
    fn unique(&mut self, name: String) -> String {
        let mut candidate = name.clone();
        let mut n = 2;
        while self.0.contains(&candidate) {
            candidate = format!("{name} ({n})");
            n += 1;
        }
        self.0.push(candidate.clone());
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_unique() {
        let mut names = Names::default();
        assert_eq!(names.unique("English".into()), "English");
        assert_eq!(names.unique("English".into()), "English (2)");
        assert_eq!(names.unique("English".into()), "English (3)");
    }

    #[test]
    fn avc1_is_lower_case_hex() {
        assert_eq!(avc1([100, 0, 41]), "avc1.640029");
        assert_eq!(avc1([66, 0xC0, 30]), "avc1.42c01e");
    }
}
