//! A keyframe index read from a file's container tables (MP4 sample tables, Matroska Cues), without decoding.
//!
//! The parsers are hand-written and bounded: they read only box and element headers and the tables
//! they need through `Read + Seek`, cap every count and size by [`Limits`], stop at a time budget,
//! and return an [`IndexError`] rather than panic on any input. A file without an index in time
//! is one to transcode.

mod cache;
mod codec;
mod mkv;
mod mp4;
mod source;

use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::path::Path;
use std::time::Duration;

pub use cache::{
    Cached, DEFAULT_CACHE_KEYFRAMES, FileVersion, IndexCache, Outcome, VersionCache, Weigh,
};
pub use codec::{AudioCodec, Chroma, H264, VideoCodec};

/// The keyframe index of one file: its first video track and first audio track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The container the index was read from.
    pub container: Container,
    /// The first enabled (and default, where the container says so) video track.
    pub video: Option<VideoTrack>,
    /// The first enabled audio track.
    pub audio: Option<AudioTrack>,
    /// Where the keyframe times came from.
    pub method: Method,
}

/// Where an index's keyframe times came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// MP4 `stss`/`stts`/`ctts` in `moov` (a `moov` with no samples counts as fragments).
    SampleTable,
    /// MP4 `moof`/`trun` sample flags.
    Fragments,
    /// Matroska Cues, spot-checked against the clusters.
    Cues,
    /// Matroska SimpleBlock/BlockGroup flags of every cluster (no usable Cues).
    ClusterScan,
}

/// Container formats the index can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// ISO BMFF: MP4, MOV, M4V, M4A, fragmented MP4.
    Mp4,
    /// Matroska and WebM.
    Matroska,
}

/// A video track's keyframes on its presentation timeline, in exact ticks.
///
/// Times are what a player presents (ffprobe's `pts_time`): MP4 decode times plus composition
/// offsets, shifted by the edit list; Matroska block timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// The track's codec as its sample description names it.
    pub codec: VideoCodec,
    /// Rotation the player must apply, in degrees counter-clockwise as ffprobe reports it (MP4
    /// display matrix; -90 for an upright phone video); 0 for none and for Matroska.
    pub rotation: i32,
    /// Ticks per second of every time in this track (never 0).
    pub timescale: u32,
    /// Presentation time of the first sample, in ticks.
    pub start: i64,
    /// Presentation time at which the last sample ends, in ticks (>= `start`).
    pub end: i64,
    /// Presentation times of the sync samples (keyframes), in ticks, ascending, without duplicates;
    /// may be empty (a file that flags none), and may start after `start` (an open GOP's leading
    /// frames, or an edit list that starts mid-GOP).
    pub keyframes: Vec<i64>,
}

/// The first audio track's codec and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// The track's codec (for AAC, the AudioSpecificConfig object type).
    pub codec: AudioCodec,
    /// Ticks per second of `start` (never 0).
    pub timescale: u32,
    /// Presentation time of the first sample, in ticks.
    pub start: i64,
}

/// Converts `ticks` at `timescale` to seconds, for logs and comparisons (plans should stay in ticks).
pub fn seconds(ticks: i64, timescale: u32) -> f64 {
    ticks as f64 / f64::from(timescale.max(1))
}

impl VideoTrack {
    /// Seconds of `ticks` on this track's timescale.
    pub fn seconds(&self, ticks: i64) -> f64 {
        seconds(ticks, self.timescale)
    }

    /// The track's duration (`end - start`), rounded down to whole nanoseconds.
    pub fn duration(&self) -> Duration {
        ticks_duration(self.end.saturating_sub(self.start), self.timescale)
    }

    /// The longest distance between two consecutive keyframes, or from the last one to `end`
    /// (the shortest longest segment a plan from these keyframes can have).
    pub fn longest_gop(&self) -> Duration {
        let mut longest = 0i64;
        let mut prev = None;
        for &k in self.keyframes.iter().chain(std::iter::once(&self.end)) {
            if let Some(p) = prev {
                longest = longest.max(k.saturating_sub(p));
            }
            prev = Some(k);
        }
        ticks_duration(longest, self.timescale)
    }
}

/// A non-negative tick count as a `Duration` (negative counts give zero).
fn ticks_duration(ticks: i64, timescale: u32) -> Duration {
    let Ok(ticks) = u64::try_from(ticks) else {
        return Duration::ZERO;
    };
    let ts = u64::from(timescale.max(1));
    let nanos = u128::from(ticks % ts) * 1_000_000_000 / u128::from(ts);
    Duration::new(ticks / ts, nanos as u32)
}

/// Bounds on the work and memory one index may take; exceeding one is an [`IndexError::Limit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget for the whole index.
    pub max_time: Duration,
    /// Largest `moov` or `moof` box read into memory.
    pub max_box_bytes: u64,
    /// Most samples (MP4) or blocks (Matroska) walked in one file.
    pub max_samples: u64,
    /// Most keyframes kept.
    pub max_keyframes: usize,
    /// Most boxes or elements whose headers are read (seeks made).
    pub max_elements: u64,
}

/// Two seconds: a file whose tables take longer is cheaper to transcode than to wait for.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(2);
/// 64 MiB: a 2-hour 60 fps `moov` is a few MB; a bigger one is hostile or pathological.
pub const DEFAULT_MAX_BOX_BYTES: u64 = 64 << 20;
/// 16 million samples: about 24 hours of 60 fps video plus 48 kHz AAC.
pub const DEFAULT_MAX_SAMPLES: u64 = 16_000_000;
/// One million keyframes: an all-intra 24-hour 12 fps file; indexes are normally a few thousand.
pub const DEFAULT_MAX_KEYFRAMES: usize = 1 << 20;
/// Four million headers: a Cues-less Matroska scan of a long file, with room to spare.
pub const DEFAULT_MAX_ELEMENTS: u64 = 4_000_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_time: DEFAULT_MAX_TIME,
            max_box_bytes: DEFAULT_MAX_BOX_BYTES,
            max_samples: DEFAULT_MAX_SAMPLES,
            max_keyframes: DEFAULT_MAX_KEYFRAMES,
            max_elements: DEFAULT_MAX_ELEMENTS,
        }
    }
}

/// Why a file has no index. Every kind means the same to a caller: transcode instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a container the index reads (MP4, Matroska)")]
    Unsupported,
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("limit exceeded: {0}")]
    Limit(&'static str),
    #[error("no index within {0:?}")]
    Timeout(Duration),
    #[error("no video or audio track")]
    NoTracks,
}

/// What a track carries, as the container says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrackKind {
    Video,
    Audio,
    Subtitles,
    #[default]
    Other,
}

/// What a container says of one track beyond its codec: how to label and pick it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackLabel {
    /// The container's track number (Matroska's TrackNumber, MP4's track ID).
    pub number: u64,
    pub kind: TrackKind,
    /// The language code as stored (`fre`, `en-US`), if any and not `und`.
    pub language: Option<String>,
    pub name: Option<String>,
    /// Flagged default (and enabled).
    pub default: bool,
    pub forced: bool,
}

/// Where a file's video keyframes lie: their times (nanoseconds on the container's clock:
/// decode times in MP4, block times in Matroska) and byte positions, ascending, and where the
/// media data ends. The bytes between two keyframes are what the stream carries between them
/// (all tracks, in an interleaved file): what a segment's bit rate is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeOffsets {
    pub keyframes: Vec<(u64, u64)>,
    /// Byte position where the last keyframe's data ends (the video's last sample's end in MP4,
    /// the Segment's end in Matroska).
    pub end: u64,
    /// Time the video ends, same clock (MP4; Matroska gives 0: the caller knows it).
    pub end_time_ns: u64,
}

/// The keyframe byte offsets of the MP4 or Matroska (with Cues) file at `path`.
pub fn keyframe_offsets(path: &Path) -> Result<KeyframeOffsets, IndexError> {
    keyframe_offsets_reader(File::open(path)?, &Limits::default())
}

/// [`keyframe_offsets`] of what `reader` holds (the fuzzer reaches it this way).
pub fn keyframe_offsets_reader<R: Read + Seek>(
    reader: R,
    limits: &Limits,
) -> Result<KeyframeOffsets, IndexError> {
    let mut src = source::Source::new(reader, limits)?;
    match sniff(&src.peek_head()?) {
        Some(Container::Matroska) => mkv::keyframe_offsets(&mut src),
        Some(Container::Mp4) => mp4::keyframe_offsets(&mut src),
        None => Err(IndexError::Unsupported),
    }
}

/// Every track's label in a Matroska or MP4 file at `path`. Reads headers only: a Matroska
/// file's head, an MP4's box headers and its tracks' small header boxes.
pub fn track_labels(path: &Path) -> Result<Vec<TrackLabel>, IndexError> {
    track_labels_reader(File::open(path)?, &Limits::default())
}

/// [`track_labels`] of what `reader` holds (the fuzzer reaches it this way).
pub fn track_labels_reader<R: Read + Seek>(
    reader: R,
    limits: &Limits,
) -> Result<Vec<TrackLabel>, IndexError> {
    let mut src = source::Source::new(reader, limits)?;
    match sniff(&src.peek_head()?) {
        Some(Container::Matroska) => mkv::labels(&mut src),
        Some(Container::Mp4) => mp4::labels(&mut src),
        None => Err(IndexError::Unsupported),
    }
}

/// Indexes the file at `path` with the default [`Limits`].
pub fn index(path: &Path) -> Result<Index, IndexError> {
    index_reader(File::open(path)?, &Limits::default())
}

/// Indexes an in-memory file (tests, the fuzzer) with the default [`Limits`].
pub fn index_bytes(data: &[u8]) -> Result<Index, IndexError> {
    index_reader(Cursor::new(data), &Limits::default())
}

/// Indexes what `reader` holds, recognising the container from its first bytes.
pub fn index_reader<R: Read + Seek>(reader: R, limits: &Limits) -> Result<Index, IndexError> {
    let mut src = source::Source::new(reader, limits)?;
    let head = src.peek_head()?;
    let container = sniff(&head).ok_or(IndexError::Unsupported)?;
    index_source(container, &mut src)
}

/// Indexes what `reader` holds as `container`, whatever its first bytes say (the fuzzer uses this
/// to reach both parsers from any input).
pub fn index_reader_as<R: Read + Seek>(
    container: Container,
    reader: R,
    limits: &Limits,
) -> Result<Index, IndexError> {
    let mut src = source::Source::new(reader, limits)?;
    index_source(container, &mut src)
}

fn index_source<R: Read + Seek>(
    container: Container,
    src: &mut source::Source<R>,
) -> Result<Index, IndexError> {
    let index = match container {
        Container::Mp4 => mp4::index(src)?,
        Container::Matroska => mkv::index(src)?,
    };
    if index.video.is_none() && index.audio.is_none() {
        return Err(IndexError::NoTracks);
    }
    Ok(index)
}

/// MP4 top-level box types a file may start with.
const MP4_FIRST_BOXES: [&[u8; 4]; 11] = [
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"moof", b"styp", b"sidx",
    b"uuid",
];
/// The EBML header's element ID, which every Matroska file starts with.
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// The container `head` (a file's first bytes) belongs to, if the index reads it.
pub fn sniff(head: &[u8]) -> Option<Container> {
    if head.starts_with(&EBML_MAGIC) {
        return Some(Container::Matroska);
    }
    let kind = head.get(4..8)?;
    MP4_FIRST_BOXES
        .iter()
        .any(|b| b.as_slice() == kind)
        .then_some(Container::Mp4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_magic_and_nothing_else() {
        assert_eq!(sniff(b"\x1A\x45\xDF\xA3\x01"), Some(Container::Matroska));
        assert_eq!(sniff(b"\0\0\0\x20ftypisom"), Some(Container::Mp4));
        assert_eq!(sniff(b"\x47\x40\x00\x10\0\0\0\0"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn garbage_and_empty_input_are_errors() {
        assert!(matches!(index_bytes(b""), Err(IndexError::Unsupported)));
        assert!(index_bytes(b"\0\0\0\x08ftyp").is_err());
        assert!(index_bytes(&EBML_MAGIC).is_err());
        for c in [Container::Mp4, Container::Matroska] {
            let junk: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            assert!(index_reader_as(c, Cursor::new(junk), &Limits::default()).is_err());
        }
    }

    #[test]
    fn durations_and_gops_from_ticks() {
        let t = VideoTrack {
            codec: VideoCodec::Other("x".into()),
            rotation: 0,
            timescale: 90_000,
            start: 0,
            end: 450_000,
            keyframes: vec![0, 90_000, 360_000],
        };
        assert_eq!(t.duration(), Duration::from_secs(5));
        assert_eq!(t.longest_gop(), Duration::from_secs(3));
        assert_eq!(ticks_duration(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(ticks_duration(-5, 3), Duration::ZERO);
    }
}
