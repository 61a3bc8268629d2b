//! Every knob of the server in one typed struct: the command line (clap), its defaults and validation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

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
                  every segment is held in memory: hlss never writes a file.",
    // `hlss user …` and `hlss link …` are commands; a folder called `user` is served as `./user`.
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Folder to serve as a browsable tree, or a single media file to serve alone.
    /// Without it, hlss serves a built-in one-minute demo (test pattern and tone).
    #[arg(env = "HLSS_PATH", value_name = "PATH")]
    pub path: Option<PathBuf>,

    /// Address and port to listen on. Use 0.0.0.0:5000 to serve other machines (with --open);
    /// port 0 picks a free port.
    #[arg(
        long,
        env = "HLSS_LISTEN",
        default_value = "127.0.0.1:5000",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Serve /metrics and /status on this address only (plain HTTP, e.g. 127.0.0.1:9090 for
    /// Prometheus), not on --listen: viewer sessions stay off the public port.
    #[arg(long, env = "HLSS_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. HTTP/2 and
    /// HTTP/1.1 by ALPN. Both files are read again on SIGHUP.
    #[arg(long, env = "HLSS_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "HLSS_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve other machines without logins: anyone who reaches the port browses and plays the
    /// whole library and reads /status and /metrics. Needed to listen beyond loopback without
    /// --users.
    #[arg(long, env = "HLSS_OPEN")]
    pub open: bool,

    /// Require a login: one `name:argon2id-hash` per line (make lines with `hlss user add NAME`).
    /// Read again when it changes and on SIGHUP. Every page, playlist and segment then needs a
    /// login (a cookie from /login, or HTTP Basic) or a signed link; /healthz never does.
    #[arg(long, env = "HLSS_USERS", value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// Key that signs login cookies and links: a file of 32 or more random bytes
    /// (`head -c 32 /dev/urandom > FILE`). Without it a key is made at start, and logins and
    /// links end when hlss stops.
    #[arg(long, env = "HLSS_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// Proxies in front of hlss (nginx, a load balancer), as addresses or blocks separated by
    /// commas (`127.0.0.1,10.0.0.0/8`): for requests from them the client is the address they
    /// forwarded in X-Forwarded-For (for the failed-login limit and viewer sessions); from anyone
    /// else that header is ignored.
    #[arg(
        long,
        env = "HLSS_TRUSTED_PROXY",
        value_name = "NETWORKS",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<crate::http::forwarded::Network>,

    /// Failed logins one address may make in a minute; beyond them it gets 429 until the
    /// minute is over (an IPv6 address counts as its /64).
    #[arg(
        long,
        env = "HLSS_LOGIN_ATTEMPTS",
        default_value_t = 10,
        value_name = "N"
    )]
    pub login_attempts: u32,

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

    /// Direct streaming: `auto` passes compatible sources through untouched (H.264 8-bit 4:2:0
    /// progressive video needing no turning, in MP4/MOV or Matroska; AAC-LC audio passes too,
    /// other audio is encoded to AAC), cut at their own keyframes, at their own size and bits,
    /// for almost no CPU; `off` transcodes everything.
    #[arg(long, env = "HLSS_DIRECT", value_enum, default_value_t = DirectMode::Auto)]
    pub direct: DirectMode,

    /// Longest segment of a direct stream, in seconds: a source whose keyframes lie further
    /// apart is transcoded instead (Apple recommends 6 s segments).
    #[arg(
        long,
        env = "HLSS_MAX_SEGMENT",
        default_value_t = 6.0,
        value_name = "SECS"
    )]
    pub max_segment: f64,

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

    /// Most transcodes (pipelines) running at once, over all streams; beyond it a new stream gets
    /// 503 with Retry-After unless an idle stream can give up its place. Default: CPU cores.
    #[arg(long, env = "HLSS_MAX_TRANSCODES", value_name = "N")]
    pub max_transcodes: Option<usize>,

    /// Memory all streams together may hold in segments, in MiB.
    #[arg(
        long,
        env = "HLSS_MEMORY_BUDGET",
        default_value_t = 1024,
        value_name = "MIB"
    )]
    pub memory_budget: u64,

    /// Seconds after which a stream nobody requested anything of is closed and its memory freed.
    #[arg(
        long,
        env = "HLSS_IDLE_TIMEOUT",
        default_value_t = 60,
        value_name = "SECS"
    )]
    pub idle_timeout: u64,

    /// Segments a transcode may run ahead of the furthest viewer before it pauses.
    #[arg(
        long,
        env = "HLSS_READ_AHEAD",
        default_value_t = 5,
        value_name = "SEGMENTS"
    )]
    pub read_ahead: u64,

    /// `Access-Control-Allow-Origin` sent with playlists, segments and hls.js, so players on other
    /// origins can use them: `*`, one origin such as `https://dash.example`, or `none` to send none.
    #[arg(
        long,
        env = "HLSS_CORS_ORIGIN",
        default_value = "*",
        value_name = "ORIGIN"
    )]
    pub cors_origin: String,

    /// Where player pages load hls.js from. Default: the copy built into hlss, served at
    /// /assets/hls.min.js; a build made without npm uses a public CDN copy of the pinned version.
    #[arg(long, env = "HLSS_HLSJS_URL", value_name = "URL")]
    pub hlsjs_url: Option<String>,
}

/// What hlss does besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the users file given to --users.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Print a signed link to a file's playlist, for a player that cannot log in (VLC, a TV, a
    /// friend): it plays that file alone, until it expires.
    Link {
        /// The file's path in the library, as in its /watch/ address (e.g. `films/Alien.mkv`).
        #[arg(value_name = "PATH")]
        path: String,
        /// How long the link works: `90m`, `24h`, `7days` (a year at most).
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        expires: humantime::Duration,
        /// The server's --secret-file: a link works on the server that has the same key.
        #[arg(long, env = "HLSS_SECRET_FILE", value_name = "FILE")]
        secret_file: PathBuf,
        /// Put this in front, e.g. `https://films.example:5000`, to print a whole URL.
        #[arg(long, value_name = "URL")]
        base: Option<String>,
        /// Print the file's player page (for a browser) instead of its playlist.
        #[arg(long)]
        page: bool,
    },
}

/// `hlss user …`
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Read a password from standard input (not echoed on a terminal) and print the line to
    /// add to the users file.
    Add {
        /// 1 to 64 printable ASCII characters without spaces or any of : , ; " \\
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// Whether compatible sources are passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum DirectMode {
    Auto,
    Off,
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
    /// Direct streaming's longest segment; `None` when `--direct off`.
    pub direct_max_segment: Option<Duration>,
}

/// What browsers are told: CORS and where the player page gets hls.js.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSettings {
    /// Value of `Access-Control-Allow-Origin`; `None` sends no CORS headers.
    pub cors_origin: Option<String>,
    /// hls.js URL given with `--hlsjs-url`; `None` means the embedded copy (or the CDN fallback).
    pub hlsjs_url: Option<String>,
}

/// Who may watch: `--users`, `--secret-file`, `--login-attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSettings {
    /// The users file; `None` serves everyone.
    pub users: Option<PathBuf>,
    pub secret_file: Option<PathBuf>,
    pub login_attempts: u32,
    pub trusted_proxies: Vec<crate::http::forwarded::Network>,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub path: Option<PathBuf>,
    /// The certificate chain and key files, when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where `/metrics` and `/status` are served instead of `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub access: AccessSettings,
    pub encoder: EncoderSettings,
    pub stream: StreamLimits,
    pub web: WebSettings,
    pub max_transcodes: usize,
    /// Bytes of segments all streams together may hold.
    pub memory_budget: usize,
    pub idle_timeout: Duration,
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
    #[error(
        "--max-segment must be between --segment-duration and {MAX_SEGMENT_SECS} seconds, got {0}"
    )]
    MaxSegment(f64),
    #[error("--audio-bitrate must be between 16 and 512 kbit/s, got {0}")]
    AudioBitrate(u32),
    #[error("--stream-memory must be at least 16 MiB, got {0}")]
    StreamMemory(u64),
    #[error("--read-ahead must be between 1 and 1000 segments, got {0}")]
    ReadAhead(u64),
    #[error("--max-transcodes must be at least 1")]
    MaxTranscodes,
    #[error("--memory-budget must be at least 16 MiB, got {0}")]
    MemoryBudget(u64),
    #[error("--idle-timeout must be between 1 and 86400 seconds, got {0}")]
    IdleTimeout(u64),
    #[error(
        "{0} is reachable from other machines, and anyone who reaches it can browse and play \
         the whole library or read its viewers: add --open to mean it, or keep 127.0.0.1 behind \
         a reverse proxy that asks for a login"
    )]
    Exposed(SocketAddr),
    #[error("--login-attempts must be between 1 and 10000, got {0}")]
    LoginAttempts(u32),
    #[error("--cors-origin must be `*`, `none` or an origin like https://host:port, got {0:?}")]
    CorsOrigin(String),
    #[error(
        "--hlsjs-url must be an http(s) URL or an absolute path without spaces, quotes, `;` or `,`, got {0:?}"
    )]
    HlsjsUrl(String),
}

impl TryFrom<Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: Cli) -> Result<Self, Self::Error> {
        // Opening the library to the network is a decision, not a side effect of an address.
        // With users the public port asks for a login; the metrics port never does.
        let public = cli.listen.ip().is_loopback() || cli.open || cli.users.is_some();
        if !public {
            return Err(ConfigError::Exposed(cli.listen));
        }
        if let Some(address) = cli.metrics_listen
            && !address.ip().is_loopback()
            && !cli.open
        {
            return Err(ConfigError::Exposed(address));
        }
        let secs = cli.segment_duration;
        if !(MIN_SEGMENT_SECS..=MAX_SEGMENT_SECS).contains(&secs) {
            return Err(ConfigError::SegmentDuration(secs));
        }
        if !(secs..=MAX_SEGMENT_SECS).contains(&cli.max_segment) {
            return Err(ConfigError::MaxSegment(cli.max_segment));
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
        let max_transcodes = cli.max_transcodes.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        if max_transcodes == 0 {
            return Err(ConfigError::MaxTranscodes);
        }
        if cli.memory_budget < 16 {
            return Err(ConfigError::MemoryBudget(cli.memory_budget));
        }
        if !(1..=86_400).contains(&cli.idle_timeout) {
            return Err(ConfigError::IdleTimeout(cli.idle_timeout));
        }
        if !(1..=10_000).contains(&cli.login_attempts) {
            return Err(ConfigError::LoginAttempts(cli.login_attempts));
        }
        let mib = |v: u64| usize::try_from(v.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let web = web_settings(cli.cors_origin, cli.hlsjs_url)?;
        Ok(Config {
            listen: cli.listen,
            path: cli.path,
            tls: cli.tls_cert.zip(cli.tls_key),
            metrics_listen: cli.metrics_listen,
            access: AccessSettings {
                users: cli.users,
                secret_file: cli.secret_file,
                login_attempts: cli.login_attempts,
                trusted_proxies: cli.trusted_proxy,
            },
            encoder: EncoderSettings {
                preset: cli.preset,
                max_height: cli.max_height,
                video_kbps: cli.video_bitrate,
                audio_kbps: cli.audio_bitrate,
                segment: Duration::from_secs_f64(secs),
                direct_max_segment: (cli.direct == DirectMode::Auto)
                    .then(|| Duration::from_secs_f64(cli.max_segment)),
            },
            stream: StreamLimits {
                mode: cli.playlist,
                memory: mib(cli.stream_memory),
                read_ahead: cli.read_ahead,
            },
            max_transcodes,
            memory_budget: mib(cli.memory_budget),
            idle_timeout: Duration::from_secs(cli.idle_timeout),
            web,
        })
    }
}

/// Checks the browser-facing options. Both end up in headers (and the URL in a
/// Content-Security-Policy), so anything that could break out of a header value or a CSP source
/// list is refused.
fn web_settings(cors: String, hlsjs: Option<String>) -> Result<WebSettings, ConfigError> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !b"\"';,<>\\`".contains(&b))
    };
    let cors_origin = match cors.trim() {
        "none" | "" => None,
        "*" => Some("*".to_owned()),
        origin
            if plain(origin)
                && origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .is_some_and(|host| !host.is_empty() && !host.contains('/')) =>
        {
            Some(origin.to_owned())
        }
        _ => return Err(ConfigError::CorsOrigin(cors)),
    };
    let hlsjs_url = match hlsjs {
        Some(url)
            if plain(&url)
                && (url.starts_with("http://")
                    || url.starts_with("https://")
                    || (url.starts_with('/') && !url.starts_with("//"))) =>
        {
            Some(url)
        }
        Some(url) => return Err(ConfigError::HlsjsUrl(url)),
        None => None,
    };
    Ok(WebSettings {
        cors_origin,
        hlsjs_url,
    })
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
        assert_eq!(
            config.encoder.direct_max_segment,
            Some(Duration::from_secs(6))
        );
        assert!(config.path.is_none());
    }

    #[test]
    fn serving_other_machines_needs_open() {
        for address in ["0.0.0.0:5000", "192.168.1.2:80", "[::]:5000"] {
            assert!(
                matches!(parse(&["--listen", address]), Err(ConfigError::Exposed(_))),
                "{address}"
            );
            assert!(parse(&["--listen", address, "--open"]).is_ok(), "{address}");
        }
        for address in ["127.0.0.1:0", "127.0.0.2:5000", "[::1]:5000"] {
            assert!(parse(&["--listen", address]).is_ok(), "{address}");
        }
        // The metrics port shows viewers: the same rule.
        assert!(matches!(
            parse(&["--metrics-listen", "0.0.0.0:9090"]),
            Err(ConfigError::Exposed(_))
        ));
        assert!(parse(&["--metrics-listen", "127.0.0.1:9090"]).is_ok());
        // Users make the public port ask for logins; the metrics port has none.
        assert!(parse(&["--listen", "0.0.0.0:5000", "--users", "/u"]).is_ok());
        assert!(matches!(
            parse(&["--users", "/u", "--metrics-listen", "0.0.0.0:9090"]),
            Err(ConfigError::Exposed(_))
        ));
    }

    #[test]
    fn commands_and_a_folder_of_the_same_name() {
        let cli = Cli::try_parse_from(["hlss", "user", "add", "alice"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::User { action: UserAction::Add { ref name } }) if name == "alice"
        ));
        let cli = Cli::try_parse_from(["hlss", "link", "a/b.mkv", "--secret-file", "k"]).unwrap();
        let Some(Command::Link { path, expires, .. }) = cli.command else {
            panic!("not a link command");
        };
        assert_eq!((path.as_str(), expires.as_secs()), ("a/b.mkv", 86_400));
        let cli = Cli::try_parse_from(["hlss", "./user"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.path.as_deref(), Some(std::path::Path::new("./user")));
        assert!(Cli::try_parse_from(["hlss", "--open", "user", "add", "x"]).is_err());
        assert_eq!(
            parse(&["--login-attempts", "0"]).unwrap_err(),
            ConfigError::LoginAttempts(0)
        );
    }

    #[test]
    fn direct_streaming_can_be_turned_off_and_bounded() {
        let off = parse(&["--direct", "off"]).unwrap();
        assert_eq!(off.encoder.direct_max_segment, None);
        let longer = parse(&["--max-segment", "10"]).unwrap();
        assert_eq!(
            longer.encoder.direct_max_segment,
            Some(Duration::from_secs(10))
        );
        // Shorter than the segment duration cannot be planned.
        assert_eq!(
            parse(&["--segment-duration", "4", "--max-segment", "3"]).unwrap_err(),
            ConfigError::MaxSegment(3.0)
        );
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
    fn web_options() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.web.cors_origin.as_deref(), Some("*"));
        assert_eq!(config.web.hlsjs_url, None);
        let config = parse(&[
            "--cors-origin",
            "https://dash.example:8443",
            "--hlsjs-url",
            "/static/hls.min.js",
        ])
        .unwrap();
        assert_eq!(
            config.web.cors_origin.as_deref(),
            Some("https://dash.example:8443")
        );
        assert_eq!(config.web.hlsjs_url.as_deref(), Some("/static/hls.min.js"));
        assert_eq!(
            parse(&["--cors-origin", "none"]).unwrap().web.cors_origin,
            None
        );
        for bad in [
            "dash.example",
            "https://a/b",
            "https://a\r\nX: y",
            "https://a, https://b",
        ] {
            assert!(
                matches!(
                    parse(&["--cors-origin", bad]),
                    Err(ConfigError::CorsOrigin(_))
                ),
                "{bad:?}"
            );
        }
        for bad in [
            "hls.min.js",
            "//cdn/hls.js",
            "https://x/a b.js",
            "https://x/';script-src *",
        ] {
            assert!(
                matches!(parse(&["--hlsjs-url", bad]), Err(ConfigError::HlsjsUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
