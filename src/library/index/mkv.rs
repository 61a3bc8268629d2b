//! Matroska/WebM: keyframe times from Cues (spot-checked against the clusters), else a header-only
//! scan of every Cluster's SimpleBlock/BlockGroup flags, skipping payloads with seeks.

use std::collections::BTreeSet;
use std::io::{Read, Seek};

use super::codec::{self, AudioCodec, H264, VideoCodec};
use super::source::Source;
use super::{
    AudioTrack, Container, Index, IndexError, KeyframeOffsets, Method, TrackKind, TrackLabel,
    VideoTrack,
};

const ID_EBML: u32 = 0x1A45_DFA3;
const ID_DOCTYPE: u32 = 0x4282;
const ID_SEGMENT: u32 = 0x1853_8067;
const ID_INFO: u32 = 0x1549_A966;
const ID_TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const ID_DURATION: u32 = 0x4489;
const ID_TRACKS: u32 = 0x1654_AE6B;
const ID_TRACK_ENTRY: u32 = 0xAE;
const ID_TRACK_NUMBER: u32 = 0xD7;
const ID_TRACK_TYPE: u32 = 0x83;
const ID_FLAG_ENABLED: u32 = 0xB9;
const ID_FLAG_DEFAULT: u32 = 0x88;
const ID_CODEC_ID: u32 = 0x86;
const ID_FLAG_FORCED: u32 = 0x55AA;
const ID_NAME: u32 = 0x536E;
const ID_LANGUAGE: u32 = 0x22_B59C;
const ID_LANGUAGE_IETF: u32 = 0x22_B59D;
const ID_CODEC_PRIVATE: u32 = 0x63A2;
const ID_DEFAULT_DURATION: u32 = 0x23_E383;
const ID_CODEC_DELAY: u32 = 0x56AA;
const ID_SEEK_HEAD: u32 = 0x114D_9B74;
const ID_SEEK: u32 = 0x4DBB;
const ID_SEEK_ID: u32 = 0x53AB;
const ID_SEEK_POSITION: u32 = 0x53AC;
const ID_CLUSTER: u32 = 0x1F43_B675;
const ID_CLUSTER_TIMESTAMP: u32 = 0xE7;
const ID_SIMPLE_BLOCK: u32 = 0xA3;
const ID_BLOCK_GROUP: u32 = 0xA0;
const ID_BLOCK: u32 = 0xA1;
const ID_REFERENCE_BLOCK: u32 = 0xFB;
const ID_BLOCK_DURATION: u32 = 0x9B;
const ID_CUES: u32 = 0x1C53_BB6B;
const ID_CUE_POINT: u32 = 0xBB;
const ID_CUE_TIME: u32 = 0xB3;
const ID_CUE_TRACK_POSITIONS: u32 = 0xB7;
const ID_CUE_TRACK: u32 = 0xF7;
const ID_CUE_CLUSTER_POSITION: u32 = 0xF1;
const ID_CUE_RELATIVE_POSITION: u32 = 0xF0;
/// Level-1 elements: one of these ends a Cluster of unknown size.
const LEVEL1: [u32; 9] = [
    ID_CLUSTER,
    ID_CUES,
    ID_INFO,
    ID_TRACKS,
    ID_SEEK_HEAD,
    0x1254_C367, // Tags
    0x1043_A770, // Chapters
    0x1941_A469, // Attachments
    ID_SEGMENT,
];

/// Largest TimestampScale taken (about 4 s per unit; real files use 1 ms or less).
const MAX_TIMESTAMP_SCALE: u64 = u32::MAX as u64;
/// Matroska's default TimestampScale: 1 ms in nanoseconds.
const DEFAULT_TIMESTAMP_SCALE: u64 = 1_000_000;
/// Cue points checked against the clusters they point to (evenly spread, first and last included).
const CUES_CHECKED: usize = 16;
/// Clusters scanned from the start for the first video and audio block when Cues give the keyframes.
const FIRST_CLUSTERS: usize = 8;
/// Most bytes of a Block read for its header (track number up to 8 bytes, timecode, flags).
const BLOCK_HEADER_BYTES: usize = 11;

/// Every track's number, language, name and flags, from the Tracks element (read before the
/// first Cluster, where muxers put it).
pub(super) fn labels<R: Read + Seek>(src: &mut Source<R>) -> Result<Vec<TrackLabel>, IndexError> {
    let (seg_start, seg_end) = segment(src)?;
    let mut pos = seg_start;
    while seg_end.saturating_sub(pos) >= 2 {
        src.tick()?;
        src.seek(pos)?;
        let h = header(src)?;
        let body_start = src.pos();
        let Some(size) = h.size else { break };
        let end = body_start.saturating_add(size).min(seg_end).max(body_start);
        match h.id {
            ID_TRACKS => {
                let body = src.read_vec(end - body_start)?;
                return Ok(parse_tracks(&body)?.into_iter().map(|t| t.label).collect());
            }
            ID_CLUSTER => break,
            _ => pos = end,
        }
    }
    Err(IndexError::Malformed("no Tracks before the first Cluster"))
}

/// Reads the EBML header (a Matroska or WebM doctype) and the Segment's header: where the
/// Segment's body starts and ends (the file's end for an unknown size).
fn segment<R: Read + Seek>(src: &mut Source<R>) -> Result<(u64, u64), IndexError> {
    src.seek(0)?;
    let ebml = header(src)?;
    if ebml.id != ID_EBML {
        return Err(IndexError::Malformed("no EBML header"));
    }
    let body = src.read_vec(ebml.size.ok_or(IndexError::Malformed("EBML header size"))?)?;
    let mut doctype = None;
    for e in elements(&body) {
        let (id, v) = e?;
        if id == ID_DOCTYPE {
            doctype = Some(v.to_vec());
        }
    }
    if !matches!(doctype.as_deref(), Some(b"matroska" | b"webm")) {
        return Err(IndexError::Unsupported);
    }
    let seg = header(src)?;
    if seg.id != ID_SEGMENT {
        return Err(IndexError::Malformed("no Segment"));
    }
    let seg_start = src.pos();
    let seg_end = seg
        .size
        .and_then(|s| seg_start.checked_add(s))
        .map_or(src.len(), |e| e.min(src.len()));
    Ok((seg_start, seg_end))
}

pub(super) fn index<R: Read + Seek>(src: &mut Source<R>) -> Result<Index, IndexError> {
    let (seg_start, seg_end) = segment(src)?;

    // Level 1, header by header: Info, Tracks and Cues are read; Clusters are skipped.
    let mut scale = DEFAULT_TIMESTAMP_SCALE;
    let mut duration = None;
    let mut tracks = Vec::new();
    let mut cues = None;
    let mut first_cluster = None;
    // Where the SeekHead says the Cues are: read them from there instead of walking every cluster.
    let mut cues_at = None;
    let mut pos = seg_start;
    while seg_end.saturating_sub(pos) >= 2 {
        src.tick()?;
        src.seek(pos)?;
        let Ok(h) = header(src) else { break };
        let body_start = src.pos();
        let end = match h.size {
            // A header that itself runs past the Segment's end leaves an empty body, never a
            // negative one.
            Some(size) => body_start.saturating_add(size).min(seg_end).max(body_start),
            None if h.id == ID_CLUSTER => Scan::new(None, None).cluster(src, pos, seg_end)?,
            None => return Err(IndexError::Malformed("unknown-size element")),
        };
        match h.id {
            ID_INFO => {
                let body = src.read_vec(end - body_start)?;
                for e in elements(&body) {
                    let (id, v) = e?;
                    match id {
                        ID_TIMESTAMP_SCALE => scale = uint(v)?,
                        ID_DURATION => duration = float(v),
                        _ => {}
                    }
                }
            }
            ID_TRACKS if tracks.is_empty() => {
                tracks = parse_tracks(&src.read_vec(end - body_start)?)?;
            }
            ID_CUES if cues.is_none() => cues = Some(src.read_vec(end - body_start)?),
            ID_SEEK_HEAD if cues_at.is_none() => {
                let body = src.read_vec(end - body_start)?;
                cues_at = seek_head_cues(&body, seg_start)?;
            }
            ID_CLUSTER => {
                first_cluster.get_or_insert(pos);
                if let Some(at) = cues_at.take().filter(|&at| at > pos && cues.is_none()) {
                    cues = read_cues_at(src, at, seg_end)?;
                    if cues.is_some() && !tracks.is_empty() {
                        break;
                    }
                }
            }
            _ => {}
        }
        pos = end;
    }
    if scale == 0 || scale > MAX_TIMESTAMP_SCALE {
        return Err(IndexError::Malformed("TimestampScale"));
    }
    let clock = Clock::new(scale);
    let video = pick(&tracks, 1);
    let audio = pick(&tracks, 2);
    let mut scan = Scan::new(video, audio);
    scan.scale = scale;
    scan.max_keyframes = src.limits.max_keyframes;
    let first_cluster = first_cluster.ok_or(IndexError::Malformed("no Cluster"))?;

    // Keyframes from Cues if they hold the video track's points and the clusters agree.
    let mut keyframes = None;
    let mut last_cue_cluster = None;
    if let (Some(v), Some(cues)) = (video, cues.as_deref()) {
        let points = parse_cues(cues, v.number, src.limits.max_keyframes)?;
        if !points.is_empty() && cues_agree(src, &points, seg_start, seg_end, &scan)? {
            keyframes = Some(points.iter().map(|p| p.0).collect::<Vec<_>>());
            last_cue_cluster = points.iter().map(|p| p.1).max();
        }
    }
    let end;
    let method = if keyframes.is_some() {
        Method::Cues
    } else {
        Method::ClusterScan
    };
    // Audio alone needs only its first block: no walk over the whole file.
    match keyframes
        .as_ref()
        .or(video.is_none().then_some(&Vec::new()))
    {
        Some(_) => {
            // The first blocks of the first clusters give each track's start.
            let mut at = first_cluster;
            for _ in 0..FIRST_CLUSTERS {
                if at >= seg_end || scan.has_starts() {
                    break;
                }
                at = scan.cluster(src, at, seg_end)?;
            }
            end = match (duration, last_cue_cluster) {
                (Some(d), _) => Some((d * scale as f64).round() as i64),
                // No Duration: the clusters from the last cue on say where the video ends.
                (None, Some(last)) => {
                    let mut at = seg_start.saturating_add(last);
                    while seg_end.saturating_sub(at) >= 2 {
                        at = scan.cluster(src, at, seg_end)?;
                    }
                    scan.video_end.map(|e| e.saturating_mul(scale as i64))
                }
                (None, None) => None,
            };
        }
        None => {
            scan.collect = true;
            let mut at = first_cluster;
            while seg_end.saturating_sub(at) >= 2 {
                at = scan.cluster(src, at, seg_end)?;
            }
            keyframes = Some(scan.keyframes.iter().copied().collect());
            end = scan.video_end.map(|e| e.saturating_mul(scale as i64));
        }
    }
    let video = match (video, scan.first_video) {
        (Some(v), Some(first)) => {
            let mut keyframes: Vec<i64> = keyframes
                .unwrap_or_default()
                .into_iter()
                .map(|k| clock.ticks(k))
                .collect();
            // Ticks saturate on absurd timestamps: equal neighbours collapse to one.
            keyframes.dedup();
            let start = clock.ticks(first);
            let end_ns = end.unwrap_or(0);
            Some(VideoTrack {
                codec: v.video_codec(),
                rotation: 0,
                timescale: clock.timescale,
                start,
                end: clock.ticks_from_ns(end_ns).max(start),
                keyframes,
            })
        }
        _ => None,
    };
    let audio = match (audio, scan.first_audio) {
        (Some(a), Some(first)) => Some(AudioTrack {
            codec: a.audio_codec(),
            timescale: clock.timescale,
            // Presentation starts after the codec's priming, as ffmpeg reports it.
            start: clock
                .ticks(first)
                .saturating_sub(clock.ticks_from_ns(i64::try_from(a.codec_delay).unwrap_or(0))),
        }),
        _ => None,
    };
    Ok(Index {
        container: Container::Matroska,
        video,
        audio,
        method,
    })
}

/// The absolute position of the Cues a SeekHead body names, if it names them.
fn seek_head_cues(body: &[u8], seg_start: u64) -> Result<Option<u64>, IndexError> {
    for e in elements(body) {
        let (id, seek) = e?;
        if id != ID_SEEK {
            continue;
        }
        let (mut target, mut position) = (None, None);
        for e in elements(seek) {
            let (id, v) = e?;
            match id {
                ID_SEEK_ID => target = Some(uint(v)?),
                ID_SEEK_POSITION => position = Some(uint(v)?),
                _ => {}
            }
        }
        if target == Some(u64::from(ID_CUES))
            && let Some(p) = position
        {
            return Ok(seg_start.checked_add(p));
        }
    }
    Ok(None)
}

/// The body of the Cues element at `at`, or `None` if something else is there (a stale SeekHead).
fn read_cues_at<R: Read + Seek>(
    src: &mut Source<R>,
    at: u64,
    seg_end: u64,
) -> Result<Option<Vec<u8>>, IndexError> {
    if seg_end.saturating_sub(at) < 2 {
        return Ok(None);
    }
    src.tick()?;
    src.seek(at)?;
    let Ok(h) = header(src) else { return Ok(None) };
    match (h.id, h.size) {
        (ID_CUES, Some(size)) => {
            let size = size.min(seg_end.saturating_sub(src.pos()));
            Ok(Some(src.read_vec(size)?))
        }
        _ => Ok(None),
    }
}

/// Timestamps in TimestampScale units as exact ticks: the units themselves when the scale divides
/// a second, else nanoseconds.
struct Clock {
    timescale: u32,
    /// Nanoseconds per tick.
    tick_ns: u64,
    scale: u64,
}

impl Clock {
    fn new(scale: u64) -> Clock {
        if 1_000_000_000 % scale == 0 {
            Clock {
                timescale: (1_000_000_000 / scale) as u32,
                tick_ns: scale,
                scale,
            }
        } else {
            Clock {
                timescale: 1_000_000_000,
                tick_ns: 1,
                scale,
            }
        }
    }

    /// Ticks of a time in TimestampScale units.
    fn ticks(&self, units: i64) -> i64 {
        units.saturating_mul((self.scale / self.tick_ns) as i64)
    }

    fn ticks_from_ns(&self, ns: i64) -> i64 {
        ns / self.tick_ns as i64
    }
}

/// An element header read from the file.
struct Header {
    id: u32,
    /// Body size; `None` for "unknown" (all ones).
    size: Option<u64>,
}

/// Reads an element header at the current position, leaving it at the body.
fn header<R: Read + Seek>(src: &mut Source<R>) -> Result<Header, IndexError> {
    let at = src.pos();
    let mut buf = [0u8; 12];
    let n = src.read_some(&mut buf)?;
    let (id, id_len) = read_id(&buf[..n])?;
    let (size, size_len) = read_size(&buf[id_len..n])?;
    src.seek(at + (id_len + size_len) as u64)?;
    Ok(Header { id, size })
}

/// An element ID (marker bits kept, as the spec writes IDs) and its length.
fn read_id(b: &[u8]) -> Result<(u32, usize), IndexError> {
    let first = *b
        .first()
        .ok_or(IndexError::Malformed("truncated element"))?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 || b.len() < len {
        return Err(IndexError::Malformed("element ID"));
    }
    Ok((b[..len].iter().fold(0, |v, &x| v << 8 | u32::from(x)), len))
}

/// A variable-size integer (marker removed) and its length; all ones is `None` (unknown size).
fn read_size(b: &[u8]) -> Result<(Option<u64>, usize), IndexError> {
    let first = *b
        .first()
        .ok_or(IndexError::Malformed("truncated element"))?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || b.len() < len {
        return Err(IndexError::Malformed("element size"));
    }
    let mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let mut v = u64::from(first & mask);
    let mut all_ones = first & mask == mask;
    for &x in &b[1..len] {
        v = v << 8 | u64::from(x);
        all_ones &= x == 0xFF;
    }
    Ok((if all_ones { None } else { Some(v) }, len))
}

/// The child elements of a body in memory: (ID, body), bounds-checked, sizes required. An iterator,
/// so a body of many tiny elements costs no memory; it ends after the first error.
fn elements(b: &[u8]) -> Elements<'_> {
    Elements { rest: b }
}

struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<(u32, &'a [u8]), IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let item = (|| {
            let (id, id_len) = read_id(b)?;
            let (size, size_len) = read_size(&b[id_len..])?;
            let start = id_len + size_len;
            let size = size.ok_or(IndexError::Malformed(
                "unknown size inside a master element",
            ))?;
            let end = usize::try_from(size)
                .ok()
                .and_then(|s| start.checked_add(s))
                .filter(|&e| e <= b.len())
                .ok_or(IndexError::Malformed("element runs past its parent"))?;
            Ok((id, &b[start..end], end))
        })();
        match item {
            Ok((id, body, end)) => {
                self.rest = &b[end..];
                Some(Ok((id, body)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn uint(v: &[u8]) -> Result<u64, IndexError> {
    if v.len() > 8 {
        return Err(IndexError::Malformed("unsigned integer element"));
    }
    Ok(v.iter().fold(0, |a, &x| a << 8 | u64::from(x)))
}

fn float(v: &[u8]) -> Option<f64> {
    let f = match v.len() {
        4 => f64::from(f32::from_be_bytes(v.try_into().ok()?)),
        8 => f64::from_be_bytes(v.try_into().ok()?),
        _ => return None,
    };
    f.is_finite()
        .then_some(f)
        .filter(|f| *f >= 0.0 && *f < 1e15)
}

/// One TrackEntry, as far as the index needs it.
#[derive(Debug, Clone)]
struct Track {
    number: u64,
    kind: u64,
    enabled: bool,
    default: bool,
    codec_id: String,
    private: Vec<u8>,
    /// DefaultDuration in nanoseconds, if given.
    default_duration: Option<u64>,
    /// CodecDelay in nanoseconds: decoder priming before the first presented sample (Opus).
    codec_delay: u64,
    label: TrackLabel,
}

impl Track {
    fn video_codec(&self) -> VideoCodec {
        match self.codec_id.as_str() {
            "V_MPEG4/ISO/AVC" => match codec::parse_avcc(*b"avc1", &self.private) {
                Ok(h) => VideoCodec::H264(h),
                Err(_) => VideoCodec::H264(H264 {
                    entry: *b"avc1",
                    profile: 0,
                    level: 0,
                    bit_depth: None,
                    chroma: None,
                    progressive: None,
                    coded_size: None,
                }),
            },
            "V_MPEGH/ISO/HEVC" => VideoCodec::Hevc,
            "V_VP8" => VideoCodec::Vp8,
            "V_VP9" => VideoCodec::Vp9,
            "V_AV1" => VideoCodec::Av1,
            other => VideoCodec::Other(other.to_string()),
        }
    }

    fn audio_codec(&self) -> AudioCodec {
        match self.codec_id.as_str() {
            "A_AAC" => AudioCodec::Aac {
                object_type: codec::aac_object_type(&self.private),
            },
            // Old-style IDs name the profile instead of carrying a config.
            id if id.starts_with("A_AAC/") => AudioCodec::Aac {
                object_type: id.ends_with("/LC").then_some(2),
            },
            other => AudioCodec::Other(other.to_string()),
        }
    }
}

/// A UTF-8 string element, trimmed of the NULs some muxers pad it with; `None` if empty.
fn text(v: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(v)
        .trim_end_matches('\0')
        .trim()
        .to_owned();
    (!s.is_empty()).then_some(s)
}

fn parse_tracks(body: &[u8]) -> Result<Vec<Track>, IndexError> {
    let mut tracks = Vec::new();
    for e in elements(body) {
        let (id, entry) = e?;
        if id != ID_TRACK_ENTRY {
            continue;
        }
        let mut t = Track {
            number: 0,
            kind: 0,
            enabled: true,
            default: true,
            codec_id: String::new(),
            private: Vec::new(),
            default_duration: None,
            codec_delay: 0,
            label: TrackLabel::default(),
        };
        let mut language = None;
        let mut ietf = None;
        for e in elements(entry) {
            let (id, v) = e?;
            match id {
                ID_TRACK_NUMBER => t.number = uint(v)?,
                ID_TRACK_TYPE => t.kind = uint(v)?,
                ID_FLAG_ENABLED => t.enabled = uint(v)? != 0,
                ID_FLAG_DEFAULT => t.default = uint(v)? != 0,
                ID_CODEC_ID => {
                    t.codec_id = String::from_utf8_lossy(v)
                        .trim_end_matches('\0')
                        .to_string();
                }
                ID_CODEC_PRIVATE => t.private = v.to_vec(),
                ID_DEFAULT_DURATION => t.default_duration = Some(uint(v)?),
                ID_CODEC_DELAY => t.codec_delay = uint(v)?,
                ID_FLAG_FORCED => t.label.forced = uint(v)? != 0,
                ID_NAME => t.label.name = text(v),
                ID_LANGUAGE => language = text(v),
                ID_LANGUAGE_IETF => ietf = text(v),
                _ => {}
            }
        }
        t.label.number = t.number;
        t.label.kind = match t.kind {
            1 => TrackKind::Video,
            2 => TrackKind::Audio,
            17 => TrackKind::Subtitles,
            _ => TrackKind::Other,
        };
        t.label.default = t.default && t.enabled;
        // Matroska's Language defaults to "eng" when absent; "und" says it is unknown.
        t.label.language = ietf.or(language).filter(|l| l != "und");
        if t.number > 0 {
            tracks.push(t);
        }
    }
    Ok(tracks)
}

/// The first enabled and default track of `kind` (1 video, 2 audio), else the first enabled one,
/// else the first one.
fn pick(tracks: &[Track], kind: u64) -> Option<&Track> {
    let of_kind = || tracks.iter().filter(move |t| t.kind == kind);
    of_kind()
        .find(|t| t.enabled && t.default)
        .or_else(|| of_kind().find(|t| t.enabled))
        .or_else(|| of_kind().next())
}

/// The video track's cue points: (time in TimestampScale units, cluster position from the
/// Segment's data start), ascending by time, without duplicate times.
fn parse_cues(cues: &[u8], track: u64, max: usize) -> Result<Vec<(i64, u64)>, IndexError> {
    let points = parse_cue_points(cues, track, max)?;
    Ok(points
        .into_iter()
        .map(|(time, cluster, _)| (time, cluster))
        .collect())
}

/// [`parse_cues`] with each point's CueRelativePosition (the block's place in its cluster), if
/// the muxer wrote one.
fn parse_cue_points(
    cues: &[u8],
    track: u64,
    max: usize,
) -> Result<Vec<(i64, u64, Option<u64>)>, IndexError> {
    let mut points = Vec::new();
    for e in elements(cues) {
        let (id, point) = e?;
        if id != ID_CUE_POINT {
            continue;
        }
        let mut time = None;
        let mut cluster = None;
        let mut relative = None;
        for e in elements(point) {
            let (id, v) = e?;
            match id {
                ID_CUE_TIME => time = Some(uint(v)?),
                ID_CUE_TRACK_POSITIONS => {
                    let mut this_track = false;
                    let mut pos = None;
                    let mut rel = None;
                    for e in elements(v) {
                        let (id, v) = e?;
                        match id {
                            ID_CUE_TRACK => this_track = uint(v)? == track,
                            ID_CUE_CLUSTER_POSITION => pos = Some(uint(v)?),
                            ID_CUE_RELATIVE_POSITION => rel = Some(uint(v)?),
                            _ => {}
                        }
                    }
                    if this_track && pos.is_some() {
                        cluster = pos;
                        relative = rel;
                    }
                }
                _ => {}
            }
        }
        if let (Some(time), Some(cluster)) = (time, cluster) {
            if points.len() >= max {
                return Err(IndexError::Limit("too many cue points"));
            }
            let time = i64::try_from(time).map_err(|_| IndexError::Malformed("CueTime"))?;
            points.push((time, cluster, relative));
        }
    }
    points.sort_unstable();
    points.dedup_by_key(|p| p.0);
    Ok(points)
}

/// Where the video track's cued keyframes lie (see [`KeyframeOffsets`]): from the Cues, the
/// keyframe's block when the cue says where it is in its cluster, else its cluster's start.
/// A file without Cues is `Unsupported` (a cluster walk would read the whole file's headers).
pub(super) fn keyframe_offsets<R: Read + Seek>(
    src: &mut Source<R>,
) -> Result<KeyframeOffsets, IndexError> {
    let (seg_start, seg_end) = segment(src)?;
    let mut scale = DEFAULT_TIMESTAMP_SCALE;
    let mut tracks = Vec::new();
    let mut cues = None;
    let mut cues_at = None;
    let mut pos = seg_start;
    while seg_end.saturating_sub(pos) >= 2 && cues.is_none() {
        src.tick()?;
        src.seek(pos)?;
        let h = header(src)?;
        let body_start = src.pos();
        let Some(size) = h.size else { break };
        let end = body_start.saturating_add(size).min(seg_end).max(body_start);
        match h.id {
            ID_INFO => {
                for e in elements(&src.read_vec(end - body_start)?) {
                    if let (ID_TIMESTAMP_SCALE, v) = e? {
                        scale = uint(v)?;
                    }
                }
            }
            ID_TRACKS if tracks.is_empty() => {
                tracks = parse_tracks(&src.read_vec(end - body_start)?)?
            }
            ID_SEEK_HEAD if cues_at.is_none() => {
                cues_at = seek_head_cues(&src.read_vec(end - body_start)?, seg_start)?;
            }
            ID_CUES => cues = Some(src.read_vec(end - body_start)?),
            ID_CLUSTER => match cues_at.take() {
                Some(at) => {
                    cues = read_cues_at(src, at, seg_end)?;
                    break;
                }
                None => break,
            },
            _ => {}
        }
        pos = end;
    }
    let video = pick(&tracks, 1).ok_or(IndexError::Malformed("no video track"))?;
    let cues = cues.ok_or(IndexError::Unsupported)?;
    if scale == 0 || scale > MAX_TIMESTAMP_SCALE {
        return Err(IndexError::Malformed("TimestampScale"));
    }
    let points = parse_cue_points(&cues, video.number, src.limits.max_keyframes)?;
    let keyframes: Vec<(u64, u64)> = points
        .into_iter()
        .filter_map(|(time, cluster, relative)| {
            let ns = u64::try_from(time).ok()?.checked_mul(scale)?;
            let at = seg_start
                .checked_add(cluster)?
                .checked_add(relative.unwrap_or(0))?;
            Some((ns, at))
        })
        .collect();
    if keyframes.is_empty() {
        return Err(IndexError::Unsupported);
    }
    Ok(KeyframeOffsets {
        keyframes,
        end: seg_end,
        end_time_ns: 0,
    })
}

/// Whether spread-out cue points name a video keyframe at their time in the cluster they point to.
fn cues_agree<R: Read + Seek>(
    src: &mut Source<R>,
    points: &[(i64, u64)],
    seg_start: u64,
    seg_end: u64,
    like: &Scan,
) -> Result<bool, IndexError> {
    let n = points.len();
    let picks: BTreeSet<usize> = (0..CUES_CHECKED.min(n))
        .map(|i| i * (n - 1) / (CUES_CHECKED.min(n) - 1).max(1))
        .collect();
    for i in picks {
        let (time, cluster) = points[i];
        let Some(at) = seg_start.checked_add(cluster).filter(|&a| a < seg_end) else {
            return Ok(false);
        };
        let mut scan = Scan::new_like(like);
        scan.collect = true;
        // A cue pointing at something other than a cluster is a wrong cue, not a broken file.
        match scan.cluster(src, at, seg_end) {
            Ok(_) => {}
            Err(IndexError::Malformed(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        if !scan.keyframes.contains(&time) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// State of a header-only walk over clusters.
struct Scan {
    video: Option<u64>,
    audio: Option<u64>,
    /// DefaultDuration of the video track in nanoseconds.
    video_default_ns: Option<u64>,
    /// Keep video keyframe times (else only the first blocks are noted).
    collect: bool,
    keyframes: BTreeSet<i64>,
    first_video: Option<i64>,
    first_audio: Option<i64>,
    /// Where the last video block ends, in TimestampScale units (ns added via DefaultDuration are
    /// rounded up to units).
    video_end: Option<i64>,
    scale: u64,
    /// Most keyframes collected (`Limits::max_keyframes`).
    max_keyframes: usize,
}

impl Scan {
    fn new(video: Option<&Track>, audio: Option<&Track>) -> Scan {
        Scan {
            video: video.map(|t| t.number),
            audio: audio.map(|t| t.number),
            video_default_ns: video.and_then(|t| t.default_duration),
            collect: false,
            keyframes: BTreeSet::new(),
            first_video: None,
            first_audio: None,
            video_end: None,
            scale: DEFAULT_TIMESTAMP_SCALE,
            max_keyframes: usize::MAX,
        }
    }

    fn new_like(other: &Scan) -> Scan {
        Scan {
            video: other.video,
            audio: other.audio,
            video_default_ns: other.video_default_ns,
            collect: false,
            keyframes: BTreeSet::new(),
            first_video: None,
            first_audio: None,
            video_end: None,
            scale: other.scale,
            max_keyframes: other.max_keyframes,
        }
    }

    fn has_starts(&self) -> bool {
        (self.video.is_none() || self.first_video.is_some())
            && (self.audio.is_none() || self.first_audio.is_some())
    }

    /// Walks the Cluster at `at` (headers only) and returns where it ends.
    fn cluster<R: Read + Seek>(
        &mut self,
        src: &mut Source<R>,
        at: u64,
        seg_end: u64,
    ) -> Result<u64, IndexError> {
        src.tick()?;
        src.seek(at)?;
        let h = header(src)?;
        let body = src.pos();
        if h.id != ID_CLUSTER {
            // Level-1 elements after the clusters (Cues, Tags): skip them.
            if LEVEL1.contains(&h.id)
                && h.id != ID_SEGMENT
                && let Some(size) = h.size
            {
                return Ok(body.saturating_add(size).min(seg_end).max(at + 1));
            }
            if h.id == 0xEC || h.id == 0xBF {
                // Void and CRC-32 between clusters.
                return Ok(body.saturating_add(h.size.unwrap_or(0)).min(seg_end));
            }
            return Err(IndexError::Malformed("expected a Cluster"));
        }
        let end = h
            .size
            .map_or(seg_end, |s| body.saturating_add(s).min(seg_end));
        let mut cluster_ts: Option<i64> = None;
        let mut pos = body;
        while end.saturating_sub(pos) >= 2 {
            src.tick()?;
            src.seek(pos)?;
            let h = header(src)?;
            if h.size.is_none() || LEVEL1.contains(&h.id) {
                // The next level-1 element ends a cluster of unknown size.
                return Ok(pos);
            }
            let start = src.pos();
            let size = h.size.unwrap_or(0);
            let next = start.saturating_add(size).min(end);
            match h.id {
                ID_CLUSTER_TIMESTAMP => {
                    let mut b = [0u8; 8];
                    let n = usize::try_from(size).unwrap_or(9);
                    if n > 8 {
                        return Err(IndexError::Malformed("Cluster Timestamp"));
                    }
                    src.read_exact(&mut b[..n])?;
                    cluster_ts = Some(uint(&b[..n])? as i64);
                }
                ID_SIMPLE_BLOCK => {
                    let (track, rel, flags) = block_header(src, size)?;
                    let key = flags & 0x80 != 0;
                    self.block(cluster_ts, track, rel, key, None)?;
                }
                ID_BLOCK_GROUP => {
                    let mut block = None;
                    let mut referenced = false;
                    let mut duration = None;
                    let mut p = start;
                    while next.saturating_sub(p) >= 2 {
                        src.tick()?;
                        src.seek(p)?;
                        let c = header(src)?;
                        let cs = c.size.ok_or(IndexError::Malformed("BlockGroup child"))?;
                        let c_start = src.pos();
                        match c.id {
                            ID_BLOCK => block = Some(block_header(src, cs)?),
                            ID_REFERENCE_BLOCK => referenced = true,
                            ID_BLOCK_DURATION if cs <= 8 => {
                                let mut b = [0u8; 8];
                                src.read_exact(&mut b[..cs as usize])?;
                                duration = Some(uint(&b[..cs as usize])?);
                            }
                            _ => {}
                        }
                        p = c_start.saturating_add(cs).min(next);
                    }
                    if let Some((track, rel, _)) = block {
                        self.block(cluster_ts, track, rel, !referenced, duration)?;
                    }
                }
                _ => {}
            }
            pos = next;
        }
        Ok(end.max(at + 1))
    }

    /// Notes one block: `duration` in TimestampScale units if the BlockGroup gave one.
    fn block(
        &mut self,
        cluster_ts: Option<i64>,
        track: u64,
        rel: i16,
        key: bool,
        duration: Option<u64>,
    ) -> Result<(), IndexError> {
        let ts = cluster_ts
            .ok_or(IndexError::Malformed("block before its Cluster Timestamp"))?
            .saturating_add(i64::from(rel));
        if Some(track) == self.video {
            self.first_video = Some(self.first_video.map_or(ts, |f| f.min(ts)));
            let dur = match (duration, self.video_default_ns) {
                (Some(d), _) => i64::try_from(d).unwrap_or(0),
                (None, Some(ns)) => i64::try_from(ns.div_ceil(self.scale.max(1))).unwrap_or(0),
                (None, None) => 0,
            };
            let block_end = ts.saturating_add(dur);
            self.video_end = Some(self.video_end.map_or(block_end, |e| e.max(block_end)));
            if key && self.collect {
                if self.keyframes.len() >= self.max_keyframes {
                    return Err(IndexError::Limit("too many keyframes"));
                }
                self.keyframes.insert(ts);
            }
        } else if Some(track) == self.audio && self.first_audio.is_none() {
            self.first_audio = Some(ts);
        }
        Ok(())
    }
}

/// Reads a (Simple)Block's header: track number, relative timestamp, flags.
fn block_header<R: Read + Seek>(
    src: &mut Source<R>,
    size: u64,
) -> Result<(u64, i16, u8), IndexError> {
    let mut b = [0u8; BLOCK_HEADER_BYTES];
    let n = (size.min(BLOCK_HEADER_BYTES as u64)) as usize;
    src.read_exact(&mut b[..n])?;
    let b = &b[..n];
    let (track, len) = read_size(b)?;
    let track = track.ok_or(IndexError::Malformed("block track number"))?;
    let rest = b
        .get(len..len + 3)
        .ok_or(IndexError::Malformed("block header"))?;
    Ok((track, i16::from_be_bytes([rest[0], rest[1]]), rest[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints() {
        assert_eq!(read_id(&[0x1A, 0x45, 0xDF, 0xA3]).unwrap(), (ID_EBML, 4));
        assert_eq!(read_id(&[0xA3]).unwrap(), (ID_SIMPLE_BLOCK, 1));
        assert!(read_id(&[0x00]).is_err());
        assert!(read_id(&[0x1A, 0x45]).is_err());
        assert_eq!(read_size(&[0x81]).unwrap(), (Some(1), 1));
        assert_eq!(read_size(&[0x40, 0x02]).unwrap(), (Some(2), 2));
        assert_eq!(read_size(&[0xFF]).unwrap(), (None, 1));
        assert_eq!(
            read_size(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
                .unwrap()
                .0,
            None
        );
        assert!(read_size(&[0x00]).is_err());
    }

    #[test]
    fn elements_reject_overruns() {
        fn all(b: &[u8]) -> Result<Vec<(u32, &[u8])>, IndexError> {
            elements(b).collect()
        }
        assert!(all(&[0x86, 0x85, b'a']).is_err());
        assert_eq!(all(&[0x86, 0x81, b'a', 0xEC, 0x80]).unwrap().len(), 2);
        assert!(all(&[0x86, 0xFF]).is_err());
    }

    fn seed(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/index");
        std::fs::read(dir.join(name)).unwrap()
    }

    fn run(data: &[u8], limits: &super::super::Limits) -> Result<Index, IndexError> {
        super::super::index_reader(std::io::Cursor::new(data), limits)
    }

    #[test]
    fn scans_and_cues_stay_within_limits() {
        use super::super::{Limits, Method};
        let nocues = seed("seed_nocues.mkv");
        let ix = run(&nocues, &Limits::default()).unwrap();
        assert_eq!(ix.method, Method::ClusterScan);
        let few = |f: fn(&mut Limits)| {
            let mut l = Limits::default();
            f(&mut l);
            l
        };
        let limits = few(|l| l.max_keyframes = 2);
        assert!(matches!(run(&nocues, &limits), Err(IndexError::Limit(_))));
        let limits = few(|l| l.max_elements = 20);
        assert!(matches!(run(&nocues, &limits), Err(IndexError::Limit(_))));
        let cues = seed("seed.mkv");
        let good = run(&cues, &Limits::default()).unwrap();
        assert_eq!(good.method, Method::Cues);
        // A SeekHead pointing off the Cues: the level-1 walk still finds them.
        let mut stale = cues.clone();
        let id = stale
            .windows(7)
            .position(|w| w == [0x53, 0xAB, 0x84, 0x1C, 0x53, 0xBB, 0x6B])
            .expect("a SeekHead entry for the Cues");
        let pos = &mut stale[id + 7..];
        assert_eq!(pos[..2], [0x53, 0xAC]);
        let len = usize::from(pos[2] & 0x0F);
        pos[2 + len] ^= 0x01;
        assert_eq!(run(&stale, &Limits::default()).unwrap(), good);
        let limits = few(|l| l.max_keyframes = 2);
        assert!(matches!(run(&cues, &limits), Err(IndexError::Limit(_))));
    }

    #[test]
    fn clocks_stay_exact() {
        let ms = Clock::new(1_000_000);
        assert_eq!((ms.timescale, ms.ticks(1500)), (1000, 1500));
        let odd = Clock::new(1_000_001);
        assert_eq!((odd.timescale, odd.ticks(2)), (1_000_000_000, 2_000_002));
    }
}
