//! How a stream is delivered: the source's own H.264/AAC passed through (direct), or transcoded, and why.

use std::time::Duration;

use crate::transcode::{AudioCodec, Codecs, VideoCodec};

/// What a direct stream does with the source's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectAudio {
    /// AAC-LC: passed through.
    Pass,
    /// Anything else: decoded and encoded to AAC beside the passed-through video.
    Encode,
    /// The source has no audio.
    None,
}

/// How a stream's runs make its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The source's H.264 remuxed untouched, cut at its own keyframes; audio as it says.
    Direct { video: bool, audio: DirectAudio },
    /// Decoded and encoded (H.264 + AAC), with the reason it could not pass.
    Transcode(Reason),
}

/// Why a source is transcoded rather than passed through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("direct streaming is off (--direct off)")]
    Off,
    #[error("a generated source")]
    Generated,
    #[error("EVENT playlists are transcoded")]
    Event,
    #[error("the video is {0}, not H.264")]
    VideoCodec(String),
    #[error("the video is {0}-bit, not 8-bit")]
    BitDepth(u32),
    #[error("the video's chroma is {0}, not 4:2:0")]
    Chroma(String),
    #[error("the video is interlaced")]
    Interlaced,
    #[error("the picture must be turned or flipped (orientation tag)")]
    Oriented,
    #[error("the audio is {0} and there is no video to pass")]
    AudioOnly(String),
    #[error("no keyframe index: {0}")]
    NoIndex(String),
    #[error("keyframes up to {:.1} s apart, over --max-segment {:.1} s", .0.as_secs_f64(), .1.as_secs_f64())]
    LongGop(Duration, Duration),
}

impl Delivery {
    /// A short name for status pages and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Delivery::Direct { .. } => "direct",
            Delivery::Transcode(_) => "transcode",
        }
    }
}

/// What the codecs allow, before the keyframes are looked at: `Ok` with the audio's handling
/// when the video (if any) is H.264 8-bit 4:2:0 progressive and needs no turning, or the
/// source is AAC audio alone.
pub fn by_codecs(codecs: &Codecs) -> Result<Delivery, Reason> {
    let audio = match &codecs.audio {
        None => DirectAudio::None,
        Some(AudioCodec { aac_lc: true, .. }) => DirectAudio::Pass,
        Some(AudioCodec { .. }) => DirectAudio::Encode,
    };
    let Some(video) = &codecs.video else {
        return match (&codecs.audio, audio) {
            (_, DirectAudio::Pass) => Ok(Delivery::Direct {
                video: false,
                audio,
            }),
            (Some(other), _) => Err(Reason::AudioOnly(other.media_type.clone())),
            (None, _) => Err(Reason::AudioOnly("missing".into())),
        };
    };
    check_video(video)?;
    Ok(Delivery::Direct { video: true, audio })
}

fn check_video(video: &VideoCodec) -> Result<(), Reason> {
    if video.media_type != "video/x-h264" {
        return Err(Reason::VideoCodec(video.media_type.clone()));
    }
    if let Some(depth) = video.bit_depth.filter(|d| *d != 8) {
        return Err(Reason::BitDepth(depth));
    }
    if let Some(chroma) = video.chroma.as_ref().filter(|c| *c != "4:2:0") {
        return Err(Reason::Chroma(chroma.clone()));
    }
    if video.interlaced {
        return Err(Reason::Interlaced);
    }
    if video.oriented {
        return Err(Reason::Oriented);
    }
    Ok(())
}

/// The last check: a direct plan's longest segment (its longest GOP) must fit `max_segment`.
pub fn by_segments(longest: Duration, max_segment: Duration) -> Result<(), Reason> {
    if longest > max_segment {
        Err(Reason::LongGop(longest, max_segment))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264() -> VideoCodec {
        VideoCodec {
            media_type: "video/x-h264".into(),
            bit_depth: Some(8),
            chroma: Some("4:2:0".into()),
            interlaced: false,
            oriented: false,
        }
    }

    fn audio(media_type: &str, aac_lc: bool) -> AudioCodec {
        AudioCodec {
            media_type: media_type.into(),
            aac_lc,
        }
    }

    #[test]
    fn h264_with_aac_lc_passes_whole() {
        let codecs = Codecs {
            video: Some(h264()),
            audio: Some(audio("audio/mpeg", true)),
        };
        assert_eq!(
            by_codecs(&codecs),
            Ok(Delivery::Direct {
                video: true,
                audio: DirectAudio::Pass
            })
        );
    }

    #[test]
    fn other_audio_is_encoded_beside_passed_video() {
        let codecs = Codecs {
            video: Some(h264()),
            audio: Some(audio("audio/x-ac3", false)),
        };
        assert_eq!(
            by_codecs(&codecs),
            Ok(Delivery::Direct {
                video: true,
                audio: DirectAudio::Encode
            })
        );
    }

    #[test]
    fn each_video_rule_sends_the_file_to_the_transcoder() {
        let cases: [(fn(&mut VideoCodec), Reason); 5] = [
            (
                |v| v.media_type = "video/x-h265".into(),
                Reason::VideoCodec("video/x-h265".into()),
            ),
            (|v| v.bit_depth = Some(10), Reason::BitDepth(10)),
            (
                |v| v.chroma = Some("4:2:2".into()),
                Reason::Chroma("4:2:2".into()),
            ),
            (|v| v.interlaced = true, Reason::Interlaced),
            (|v| v.oriented = true, Reason::Oriented),
        ];
        for (change, reason) in cases {
            let mut video = h264();
            change(&mut video);
            let codecs = Codecs {
                video: Some(video),
                audio: None,
            };
            assert_eq!(by_codecs(&codecs), Err(reason));
        }
    }

    #[test]
    fn aac_alone_passes_other_audio_alone_does_not() {
        let aac = Codecs {
            video: None,
            audio: Some(audio("audio/mpeg", true)),
        };
        assert_eq!(
            by_codecs(&aac),
            Ok(Delivery::Direct {
                video: false,
                audio: DirectAudio::Pass
            })
        );
        let mp3 = Codecs {
            video: None,
            audio: Some(audio("audio/mpeg", false)),
        };
        assert_eq!(
            by_codecs(&mp3),
            Err(Reason::AudioOnly("audio/mpeg".into()))
        );
    }

    #[test]
    fn a_gop_longer_than_the_longest_segment_transcodes() {
        let max = Duration::from_secs(6);
        assert!(by_segments(Duration::from_secs(6), max).is_ok());
        let long = by_segments(Duration::from_millis(8500), max).unwrap_err();
        assert_eq!(
            long.to_string(),
            "keyframes up to 8.5 s apart, over --max-segment 6.0 s"
        );
    }
}
