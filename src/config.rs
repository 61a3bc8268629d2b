//! Every knob of the server in one typed struct: the command line (clap), its defaults and validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Shortest segment we accept: shorter ones make players refetch playlists constantly.
const MIN_SEGMENT_SECS: f64 = 0.5;
/// Longest segment we accept: RFC 8216 players buffer three of them before starting.
const MAX_SEGMENT_SECS: f64 = 30.0;

#[derive(Debug, Parser)]
#[command(
    name = "hlss",
    version,
    about = "On-demand HLS streaming server: browse a folder, play any media file over HLS.",
    long_about = "On-demand HLS streaming server. Point it at a folder (or one file); people browse it \
                  at http://LISTEN/ and play any file GStreamer can decode in a browser, VLC, mpv, \
                  ffplay or a phone. Files are transcoded on the fly to H.264 + AAC in MPEG-TS and \
                  every segment is held in memory: hlss never writes a file."
)]
pub struct Cli {
    /// Folder to serve as a browsable tree, or a single media file to serve alone.
    /// Without it, hlss serves a built-in one-minute demo (test pattern and tone).
    #[arg(env = "HLSS_PATH", value_name = "PATH")]
    pub path: Option<PathBuf>,

    /// Address and port to listen on. Use 0.0.0.0:5000 to serve other machines; port 0 picks a free port.
    #[arg(
        long,
        env = "HLSS_LISTEN",
        default_value = "127.0.0.1:5000",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Target duration of each HLS segment in seconds; keyframes are forced at these boundaries.
    #[arg(
        long,
        env = "HLSS_SEGMENT_DURATION",
        default_value_t = 2.0,
        value_name = "SECS"
    )]
    pub segment_duration: f64,

    /// x264 speed preset: faster presets start streams sooner and use less CPU, slower ones compress better.
    #[arg(long, env = "HLSS_PRESET", value_enum, default_value_t = Preset::Veryfast)]
    pub preset: Preset,

    /// Largest output video height in pixels; taller sources are scaled down keeping their aspect ratio.
    #[arg(
        long,
        env = "HLSS_MAX_HEIGHT",
        default_value_t = 720,
        value_name = "PIXELS"
    )]
    pub max_height: u32,

    /// Video bitrate in kbit/s.
    #[arg(
        long,
        env = "HLSS_VIDEO_BITRATE",
        default_value_t = 3000,
        value_name = "KBPS"
    )]
    pub video_bitrate: u32,

    /// Audio (AAC stereo) bitrate in kbit/s.
    #[arg(
        long,
        env = "HLSS_AUDIO_BITRATE",
        default_value_t = 128,
        value_name = "KBPS"
    )]
    pub audio_bitrate: u32,

    /// Playlist kind: `vod` lists the whole file at once, so players can seek anywhere (segments are
    /// made on demand); `event` grows as the transcode advances. Files of unknown duration are
    /// always served as `event`.
    #[arg(long, env = "HLSS_PLAYLIST", value_enum, default_value_t = PlaylistMode::Vod)]
    pub playlist: PlaylistMode,

    /// Memory one stream may hold in segments, in MiB. Beyond it segments furthest behind the
    /// viewers are dropped (made again if asked for; an EVENT playlist becomes a sliding window).
    #[arg(
        long,
        env = "HLSS_STREAM_MEMORY",
        default_value_t = 256,
        value_name = "MIB"
    )]
    pub stream_memory: u64,

    /// Segments a transcode may run ahead of the furthest viewer before it pauses.
    #[arg(
        long,
        env = "HLSS_READ_AHEAD",
        default_value_t = 5,
        value_name = "SEGMENTS"
    )]
    pub read_ahead: u64,
}

/// How playlists are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum PlaylistMode {
    /// Complete playlist at once when the duration is known (EVENT otherwise).
    Vod,
    /// A growing EVENT playlist from one transcode.
    Event,
}

/// What each stream may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub mode: PlaylistMode,
    /// Bytes of segments held per stream.
    pub memory: usize,
    /// Segments a run may be ahead of its furthest viewer.
    pub read_ahead: u64,
}

/// x264's speed presets, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Preset {
    Ultrafast,
    Superfast,
    Veryfast,
    Faster,
    Fast,
    Medium,
    Slow,
    Slower,
    Veryslow,
}

impl Preset {
    /// The nick x264enc's `speed-preset` property takes.
    pub fn nick(self) -> &'static str {
        match self {
            Preset::Ultrafast => "ultrafast",
            Preset::Superfast => "superfast",
            Preset::Veryfast => "veryfast",
            Preset::Faster => "faster",
            Preset::Fast => "fast",
            Preset::Medium => "medium",
            Preset::Slow => "slow",
            Preset::Slower => "slower",
            Preset::Veryslow => "veryslow",
        }
    }
}

/// What the transcoder is asked to produce.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncoderSettings {
    pub preset: Preset,
    pub max_height: u32,
    pub video_kbps: u32,
    pub audio_kbps: u32,
    pub segment: Duration,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub path: Option<PathBuf>,
    pub encoder: EncoderSettings,
    pub stream: StreamLimits,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "--segment-duration must be between {MIN_SEGMENT_SECS} and {MAX_SEGMENT_SECS} seconds, got {0}"
    )]
    SegmentDuration(f64),
    #[error("--max-height must be between 16 and 4320 pixels, got {0}")]
    MaxHeight(u32),
    #[error("--video-bitrate must be between 100 and 100000 kbit/s, got {0}")]
    VideoBitrate(u32),
    #[error("--audio-bitrate must be between 16 and 512 kbit/s, got {0}")]
    AudioBitrate(u32),
    #[error("--stream-memory must be at least 16 MiB, got {0}")]
    StreamMemory(u64),
    #[error("--read-ahead must be between 1 and 1000 segments, got {0}")]
    ReadAhead(u64),
}

impl TryFrom<Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: Cli) -> Result<Self, Self::Error> {
        let secs = cli.segment_duration;
        if !(MIN_SEGMENT_SECS..=MAX_SEGMENT_SECS).contains(&secs) {
            return Err(ConfigError::SegmentDuration(secs));
        }
        if !(16..=4320).contains(&cli.max_height) {
            return Err(ConfigError::MaxHeight(cli.max_height));
        }
        if !(100..=100_000).contains(&cli.video_bitrate) {
            return Err(ConfigError::VideoBitrate(cli.video_bitrate));
        }
        if !(16..=512).contains(&cli.audio_bitrate) {
            return Err(ConfigError::AudioBitrate(cli.audio_bitrate));
        }
        if cli.stream_memory < 16 {
            return Err(ConfigError::StreamMemory(cli.stream_memory));
        }
        if !(1..=1000).contains(&cli.read_ahead) {
            return Err(ConfigError::ReadAhead(cli.read_ahead));
        }
        Ok(Config {
            listen: cli.listen,
            path: cli.path,
            encoder: EncoderSettings {
                preset: cli.preset,
                max_height: cli.max_height,
                video_kbps: cli.video_bitrate,
                audio_kbps: cli.audio_bitrate,
                segment: Duration::from_secs_f64(secs),
            },
            stream: StreamLimits {
                mode: cli.playlist,
                memory: usize::try_from(cli.stream_memory.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
                read_ahead: cli.read_ahead,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("hlss").chain(args.iter().copied()))
            .expect("arguments parse");
        Config::try_from(cli)
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(config.encoder.segment, Duration::from_secs(2));
        assert_eq!(config.encoder.preset, Preset::Veryfast);
        assert!(config.path.is_none());
    }

    #[test]
    fn rejects_out_of_range_values() {
        assert_eq!(
            parse(&["--segment-duration", "0.1"]).unwrap_err(),
            ConfigError::SegmentDuration(0.1)
        );
        assert_eq!(
            parse(&["--max-height", "1"]).unwrap_err(),
            ConfigError::MaxHeight(1)
        );
        assert!(parse(&["--segment-duration", "NaN"]).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
