//! ISO BMFF (MP4/MOV/fMP4): keyframe times from `moov` sample tables and `moof` track runs.
//!
//! The top level is walked header by header with seeks (an `mdat` is never read); `moov` and each
//! `moof` are read whole, within `Limits::max_box_bytes`, and parsed from memory with bounds checks.

use super::codec::{self, AudioCodec, VideoCodec};
use super::source::{Slice, Source};
use super::{
    AudioTrack, Container, Index, IndexError, KeyframeOffsets, Limits, Method, TrackKind,
    TrackLabel, VideoTrack,
};
use std::io::{Read, Seek};

/// Most tracks looked at in one `moov`.
const MAX_TRACKS: usize = 64;
/// Most child boxes walked in one container box (a `traf` with many `trun`s is the largest case).
const MAX_CHILDREN: usize = 100_000;
/// Most entries read from one edit list (real ones have one or two).
const MAX_EDITS: usize = 64;
/// Samples between two looks at the clock while walking tables.
const CLOCK_EVERY: u64 = 1 << 16;

/// trun / tfhd / trex sample flag: `sample_is_non_sync_sample`.
const NON_SYNC: u32 = 0x0001_0000;

pub(super) fn index<R: Read + Seek>(src: &mut Source<R>) -> Result<Index, IndexError> {
    let mut movie: Option<Movie> = None;
    let mut pos = 0u64;
    let len = src.len();
    while len - pos >= 8 {
        src.tick()?;
        src.seek(pos)?;
        let mut head = [0u8; 16];
        let n = src.read_some(&mut head)?;
        let (kind, header_len, size) = box_header(&head[..n])?;
        let size = match size {
            Some(size) => size,
            None => len - pos,
        };
        // A box that claims to run past the end: a truncated file. Read what is needed, stop after.
        let end = pos.checked_add(size).filter(|&e| e <= len).unwrap_or(len);
        let body_len = end - pos - header_len;
        match &kind {
            b"moov" => {
                if movie.is_some() {
                    return Err(IndexError::Malformed("second moov"));
                }
                src.seek(pos + header_len)?;
                let body = src.read_vec(body_len)?;
                let budget = Budget {
                    samples: 0,
                    deadline: src.deadline(),
                };
                movie = Some(Movie::parse(&body, &src.limits, budget)?);
            }
            b"moof" => {
                let Some(movie) = movie.as_mut() else {
                    return Err(IndexError::Malformed("moof before moov"));
                };
                src.seek(pos + header_len)?;
                let body = src.read_vec(body_len)?;
                movie.fragment(&body, &src.limits)?;
                src.check_time()?;
            }
            _ => {}
        }
        pos = end;
    }
    let movie = movie.ok_or(IndexError::Malformed("no moov"))?;
    movie.finish(&src.limits)
}

/// The boxes of `kind` among the children of the byte range `within` (a box's body), as body
/// ranges, found by reading headers only (seeking past bodies).
fn find_boxes<R: Read + Seek>(
    src: &mut Source<R>,
    within: (u64, u64),
    kind: &[u8; 4],
) -> Result<Vec<(u64, u64)>, IndexError> {
    let (mut pos, end) = within;
    let mut found = Vec::new();
    let mut walked = 0;
    while end.saturating_sub(pos) >= 8 && walked < MAX_CHILDREN {
        walked += 1;
        src.tick()?;
        src.seek(pos)?;
        let mut head = [0u8; 16];
        let n = src.read_some(&mut head)?;
        let (found_kind, header_len, size) = box_header(&head[..n])?;
        let box_end = size
            .and_then(|size| pos.checked_add(size))
            .map_or(end, |e| e.min(end));
        if &found_kind == kind {
            found.push((pos + header_len, box_end));
        }
        pos = box_end;
    }
    Ok(found)
}

/// The body of a small box (a header's worth), read whole.
fn small_body<R: Read + Seek>(
    src: &mut Source<R>,
    range: (u64, u64),
) -> Result<Vec<u8>, IndexError> {
    const SMALL: u64 = 4096;
    src.seek(range.0)?;
    src.read_vec(range.1.saturating_sub(range.0).min(SMALL))
}

/// Every track's kind, language and enabled flag, read from the `tkhd`, `hdlr` and `mdhd` of
/// each `trak` by headers and small bodies only: a long film's sample tables are not read.
pub(super) fn labels<R: Read + Seek>(src: &mut Source<R>) -> Result<Vec<TrackLabel>, IndexError> {
    let whole = (0, src.len());
    let moov = *find_boxes(src, whole, b"moov")?
        .first()
        .ok_or(IndexError::Malformed("no moov"))?;
    let mut labels = Vec::new();
    for trak in find_boxes(src, moov, b"trak")?.into_iter().take(MAX_TRACKS) {
        let Some(&tkhd) = find_boxes(src, trak, b"tkhd")?.first() else {
            continue;
        };
        let tkhd = small_body(src, tkhd)?;
        let (v, flags, mut s) = full_box(&tkhd)?;
        s.skip(if v == 1 { 16 } else { 8 })?;
        let number = u64::from(s.u32()?);
        let Some(&mdia) = find_boxes(src, trak, b"mdia")?.first() else {
            continue;
        };
        let (Some(&hdlr), Some(&mdhd)) = (
            find_boxes(src, mdia, b"hdlr")?.first(),
            find_boxes(src, mdia, b"mdhd")?.first(),
        ) else {
            continue;
        };
        let hdlr = small_body(src, hdlr)?;
        let (_, _, mut s) = full_box(&hdlr)?;
        s.skip(4)?;
        let kind = match &s.fourcc()? {
            b"vide" => TrackKind::Video,
            b"soun" => TrackKind::Audio,
            b"sbtl" | b"text" | b"subt" | b"clcp" => TrackKind::Subtitles,
            _ => TrackKind::Other,
        };
        let mdhd = small_body(src, mdhd)?;
        let (v, _, mut s) = full_box(&mdhd)?;
        s.skip(if v == 1 { 28 } else { 16 })?;
        // ISO 639-2/T in three 5-bit letters, each offset by 0x60.
        let packed = s.u16()?;
        let letters = [(packed >> 10) & 0x1F, (packed >> 5) & 0x1F, packed & 0x1F];
        let language: Option<String> = letters
            .iter()
            .map(|&l| char::from_u32(u32::from(l) + 0x60).filter(char::is_ascii_lowercase))
            .collect::<Option<String>>()
            .filter(|l| l != "und");
        labels.push(TrackLabel {
            number,
            kind,
            language,
            name: None,
            default: flags & 1 != 0,
            forced: false,
        });
    }
    Ok(labels)
}

/// Where in the file each sync sample of the first enabled video track lies, by its decode time:
/// chunk offsets (`stco`/`co64`), samples per chunk (`stsc`) and sample sizes (`stsz`) walked
/// beside `stts` and `stss`. A fragmented file (no samples in `moov`) is `Unsupported`.
pub(super) fn keyframe_offsets<R: Read + Seek>(
    src: &mut Source<R>,
) -> Result<KeyframeOffsets, IndexError> {
    let moov = *find_boxes(src, (0, src.len()), b"moov")?
        .first()
        .ok_or(IndexError::Malformed("no moov"))?;
    if moov.1 - moov.0 > src.limits.max_box_bytes {
        return Err(IndexError::Limit("moov too large"));
    }
    src.seek(moov.0)?;
    let moov = src.read_vec(moov.1 - moov.0)?;
    let boxes = children(&moov)?;
    let mut chosen = None;
    for (_, trak) in boxes.iter().filter(|(k, _)| k == b"trak").take(MAX_TRACKS) {
        let trak = children(trak)?;
        let enabled = match child(&trak, b"tkhd") {
            Some(tkhd) => full_box(tkhd)?.1 & 1 != 0,
            None => false,
        };
        let Some(mdia) = child(&trak, b"mdia") else {
            continue;
        };
        let mdia = children(mdia)?;
        let Some(hdlr) = child(&mdia, b"hdlr") else {
            continue;
        };
        let (_, _, mut s) = full_box(hdlr)?;
        s.skip(4)?;
        if &s.fourcc()? != b"vide" {
            continue;
        }
        if chosen.is_none() || enabled {
            chosen = Some(mdia);
            if enabled {
                break;
            }
        }
    }
    let mdia = chosen.ok_or(IndexError::Malformed("no video track"))?;
    let (v, _, mut s) = full_box(child(&mdia, b"mdhd").ok_or(IndexError::Malformed("no mdhd"))?)?;
    s.skip(if v == 1 { 16 } else { 8 })?;
    let timescale = u64::from(s.u32()?.max(1));
    let minf = children(child(&mdia, b"minf").ok_or(IndexError::Malformed("no minf"))?)?;
    let stbl = children(child(&minf, b"stbl").ok_or(IndexError::Malformed("no stbl"))?)?;
    let table = |kind: &[u8; 4], entry: usize| -> Result<Option<Slice<'_>>, IndexError> {
        let Some(body) = child(&stbl, kind) else {
            return Ok(None);
        };
        let (_, _, mut s) = full_box(body)?;
        let n = s.u32()? as usize;
        if n.saturating_mul(entry) > s.remaining() {
            return Err(IndexError::Malformed(
                "sample table shorter than its entry count",
            ));
        }
        Ok(Some(Slice::new(s.take(n * entry)?, "sample table")))
    };
    let mut stts = table(b"stts", 8)?.ok_or(IndexError::Unsupported)?;
    let mut stsc = table(b"stsc", 12)?.ok_or(IndexError::Malformed("no stsc"))?;
    let mut stss = table(b"stss", 4)?;
    let (mut chunks, wide) = match table(b"co64", 8)? {
        Some(t) => (t, true),
        None => (
            table(b"stco", 4)?.ok_or(IndexError::Malformed("no stco"))?,
            false,
        ),
    };
    let stsz = child(&stbl, b"stsz").ok_or(IndexError::Malformed("no stsz"))?;
    let (_, _, mut sizes) = full_box(stsz)?;
    let fixed_size = sizes.u32()?;
    let count = sizes.u32()?;
    if u64::from(count) > src.limits.max_samples {
        return Err(IndexError::Limit("too many samples"));
    }
    if fixed_size == 0 && (count as usize).saturating_mul(4) > sizes.remaining() {
        return Err(IndexError::Malformed("stsz shorter than its sample count"));
    }
    // stsc runs: (first chunk, samples per chunk), the next run's first chunk ending each.
    let mut runs = Vec::new();
    while stsc.remaining() >= 12 {
        let first = stsc.u32()?;
        let per_chunk = stsc.u32()?;
        let _description = stsc.u32()?;
        runs.push((first, per_chunk));
    }
    let mut keyframes = Vec::new();
    let mut end = 0u64;
    let (mut sample, mut dts) = (0u32, 0u64);
    let (mut stts_left, mut delta) = (0u32, 0u32);
    let mut next_sync = None;
    let mut chunk = 0u32;
    let mut run = 0usize;
    'chunks: while chunks.remaining() > 0 {
        chunk += 1;
        let mut offset = if wide {
            chunks.u64()?
        } else {
            u64::from(chunks.u32()?)
        };
        while runs.get(run + 1).is_some_and(|&(first, _)| first <= chunk) {
            run += 1;
        }
        let per_chunk = runs.get(run).map_or(0, |r| r.1);
        for _ in 0..per_chunk {
            if sample >= count {
                break 'chunks;
            }
            sample += 1;
            if u64::from(sample) % CLOCK_EVERY == 0 {
                src.check_time()?;
            }
            let size = if fixed_size != 0 {
                fixed_size
            } else {
                sizes.u32()?
            };
            let sync = match stss.as_mut() {
                None => true,
                Some(s) => {
                    while next_sync.is_none_or(|n| n < sample) && s.remaining() >= 4 {
                        next_sync = Some(s.u32()?);
                    }
                    next_sync == Some(sample)
                }
            };
            if sync {
                if keyframes.len() >= src.limits.max_keyframes {
                    return Err(IndexError::Limit("too many keyframes"));
                }
                let ns = u128::from(dts) * 1_000_000_000 / u128::from(timescale);
                keyframes.push((u64::try_from(ns).unwrap_or(u64::MAX), offset));
            }
            end = end.max(offset.saturating_add(u64::from(size)));
            offset = offset.saturating_add(u64::from(size));
            while stts_left == 0 && stts.remaining() >= 8 {
                stts_left = stts.u32()?;
                delta = stts.u32()?;
            }
            stts_left = stts_left.saturating_sub(1);
            dts = dts.saturating_add(u64::from(delta));
        }
    }
    if keyframes.is_empty() {
        return Err(IndexError::Unsupported);
    }
    Ok(KeyframeOffsets {
        keyframes,
        end,
        end_time_ns: u64::try_from(u128::from(dts) * 1_000_000_000 / u128::from(timescale))
            .unwrap_or(u64::MAX),
    })
}

/// A box header at the start of `head`: (type, header length, total size or `None` for "to the end").
fn box_header(head: &[u8]) -> Result<([u8; 4], u64, Option<u64>), IndexError> {
    let mut s = Slice::new(head, "box header");
    let size32 = s.u32()?;
    let kind = s.fourcc()?;
    let (header_len, size) = match size32 {
        0 => (8, None),
        1 => (16, Some(s.u64()?)),
        n => (8, Some(u64::from(n))),
    };
    if size.is_some_and(|s| s < header_len) {
        return Err(IndexError::Malformed("box size smaller than its header"));
    }
    Ok((kind, header_len, size))
}

/// A child box in memory: its type and body.
type Child<'a> = ([u8; 4], &'a [u8]);

/// The child boxes of a box body already in memory, in order, bounds-checked.
fn children(body: &[u8]) -> Result<Vec<Child<'_>>, IndexError> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 8 {
        if out.len() >= MAX_CHILDREN {
            return Err(IndexError::Limit("too many child boxes"));
        }
        let (kind, header_len, size) = box_header(rest)?;
        let size = size.unwrap_or(rest.len() as u64);
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= rest.len())
            .ok_or(IndexError::Malformed("child box runs past its parent"))?;
        out.push((kind, &rest[header_len as usize..size]));
        rest = &rest[size..];
    }
    Ok(out)
}

fn child<'a>(boxes: &[Child<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes.iter().find(|(k, _)| k == kind).map(|(_, b)| *b)
}

/// A full box's version and flags, and the rest of its body.
fn full_box(body: &[u8]) -> Result<(u8, u32, Slice<'_>), IndexError> {
    let mut s = Slice::new(body, "full box");
    let vf = s.u32()?;
    Ok(((vf >> 24) as u8, vf & 0x00FF_FFFF, s))
}

/// The movie: its tracks as far as the index needs them.
struct Movie {
    video: Option<Track>,
    audio: Option<Track>,
    budget: Budget,
    /// Whether any `moof` carried samples of a followed track.
    fragmented: bool,
}

/// The edit list, reduced to what maps media time to presentation time.
#[derive(Default, Clone, Copy)]
struct Edit {
    /// Leading empty edits, in the track's timescale: presentation starts this late.
    empty: i64,
    /// Media time at which the first non-empty edit starts; `None` without an edit list.
    media_time: Option<i64>,
}

/// One track: what it is, and the timeline its samples make.
struct Track {
    id: u32,
    timescale: u32,
    edit: Edit,
    video_codec: Option<VideoCodec>,
    /// tkhd display matrix rotation, in degrees as ffprobe reports it.
    rotation: i32,
    audio_codec: Option<AudioCodec>,
    /// trex defaults for fragments: (duration, flags).
    trex: (u32, u32),
    timeline: Timeline,
}

/// Samples seen so far, in media (decode) time.
struct Timeline {
    /// Decode time of the next sample.
    dts: i64,
    min_pts: Option<i64>,
    max_end: i64,
    keyframes: Option<Vec<i64>>,
}

impl Timeline {
    fn new(keep_keyframes: bool) -> Self {
        Timeline {
            dts: 0,
            min_pts: None,
            max_end: i64::MIN,
            keyframes: keep_keyframes.then(Vec::new),
        }
    }

    fn sample(
        &mut self,
        duration: u32,
        cto: i64,
        sync: bool,
        limits: &Limits,
    ) -> Result<(), IndexError> {
        let pts = self.dts.saturating_add(cto);
        self.min_pts = Some(self.min_pts.map_or(pts, |m| m.min(pts)));
        self.max_end = self.max_end.max(pts.saturating_add(i64::from(duration)));
        self.dts = self.dts.saturating_add(i64::from(duration));
        if sync && let Some(k) = self.keyframes.as_mut() {
            if k.len() >= limits.max_keyframes {
                return Err(IndexError::Limit("too many keyframes"));
            }
            k.push(pts);
        }
        Ok(())
    }
}

/// Counts samples against the limit across all tables and fragments, and checks the clock.
struct Budget {
    samples: u64,
    deadline: std::time::Instant,
}

impl Movie {
    fn parse(moov: &[u8], limits: &Limits, mut budget: Budget) -> Result<Movie, IndexError> {
        let boxes = children(moov)?;
        let mvhd = child(&boxes, b"mvhd").ok_or(IndexError::Malformed("no mvhd"))?;
        let (v, _, mut s) = full_box(mvhd)?;
        s.skip(if v == 1 { 16 } else { 8 })?;
        let movie_timescale = s.u32()?;
        let mut trex = Vec::new();
        if let Some(mvex) = child(&boxes, b"mvex") {
            for (kind, body) in children(mvex)? {
                if &kind == b"trex" {
                    let (_, _, mut s) = full_box(body)?;
                    let id = s.u32()?;
                    let _desc = s.u32()?;
                    let duration = s.u32()?;
                    let _size = s.u32()?;
                    let flags = s.u32()?;
                    trex.push((id, (duration, flags)));
                }
            }
        }
        let mut video = None;
        let mut audio = None;
        // First enabled track of each kind; a disabled one only if no enabled one exists.
        let mut fallback_video = None;
        let mut fallback_audio = None;
        for (n, trak) in boxes.iter().filter(|(k, _)| k == b"trak").enumerate() {
            if n >= MAX_TRACKS {
                return Err(IndexError::Limit("too many tracks"));
            }
            let Some((handler, enabled, track)) =
                Track::parse(trak.1, movie_timescale, &trex, limits, &mut budget)?
            else {
                continue;
            };
            let (slot, fallback) = match &handler {
                b"vide" => (&mut video, &mut fallback_video),
                b"soun" => (&mut audio, &mut fallback_audio),
                _ => continue,
            };
            if slot.is_none() {
                if enabled {
                    *slot = Some(track);
                } else if fallback.is_none() {
                    *fallback = Some(track);
                }
            }
        }
        Ok(Movie {
            video: video.or(fallback_video),
            audio: audio.or(fallback_audio),
            budget,
            fragmented: false,
        })
    }

    /// Adds one `moof`'s samples to the tracks it carries.
    fn fragment(&mut self, moof: &[u8], limits: &Limits) -> Result<(), IndexError> {
        let budget = &mut self.budget;
        for (kind, traf) in children(moof)? {
            if &kind != b"traf" {
                continue;
            }
            let boxes = children(traf)?;
            let tfhd = child(&boxes, b"tfhd").ok_or(IndexError::Malformed("traf without tfhd"))?;
            let (_, flags, mut s) = full_box(tfhd)?;
            let id = s.u32()?;
            let track = [self.video.as_mut(), self.audio.as_mut()]
                .into_iter()
                .flatten()
                .find(|t| t.id == id);
            let Some(track) = track else { continue };
            self.fragmented = true;
            if flags & 0x01 != 0 {
                s.skip(8)?; // base_data_offset
            }
            if flags & 0x02 != 0 {
                s.skip(4)?; // sample_description_index
            }
            let (mut duration, mut sample_flags) = track.trex;
            if flags & 0x08 != 0 {
                duration = s.u32()?;
            }
            if flags & 0x10 != 0 {
                s.skip(4)?; // default_sample_size
            }
            if flags & 0x20 != 0 {
                sample_flags = s.u32()?;
            }
            if let Some(tfdt) = child(&boxes, b"tfdt") {
                let (v, _, mut s) = full_box(tfdt)?;
                let base = if v == 1 {
                    s.u64()?
                } else {
                    u64::from(s.u32()?)
                };
                track.timeline.dts =
                    i64::try_from(base).map_err(|_| IndexError::Malformed("tfdt"))?;
            }
            for (kind, trun) in &boxes {
                if kind == b"trun" {
                    run(trun, duration, sample_flags, track, limits, budget)?;
                }
            }
        }
        Ok(())
    }

    fn finish(self, limits: &Limits) -> Result<Index, IndexError> {
        let video = match self.video {
            Some(t) => {
                let codec = t
                    .video_codec
                    .clone()
                    .unwrap_or(VideoCodec::Other("unknown".into()));
                let (start, end, keyframes) = t.presentation(limits)?;
                // A track without samples (an empty moov whose fragments never came) has no index.
                start.map(|start| VideoTrack {
                    codec,
                    rotation: t.rotation,
                    timescale: t.timescale,
                    start,
                    end: end.max(start),
                    keyframes,
                })
            }
            None => None,
        };
        let audio = match self.audio {
            Some(t) => {
                let codec = t
                    .audio_codec
                    .clone()
                    .unwrap_or(AudioCodec::Other("unknown".into()));
                let (start, ..) = t.presentation(limits)?;
                start.map(|start| AudioTrack {
                    codec,
                    timescale: t.timescale,
                    start,
                })
            }
            None => None,
        };
        Ok(Index {
            container: Container::Mp4,
            video,
            audio,
            method: if self.fragmented {
                Method::Fragments
            } else {
                Method::SampleTable
            },
        })
    }
}

/// One `trun`: per-sample durations, flags and composition offsets.
fn run(
    trun: &[u8],
    default_duration: u32,
    default_flags: u32,
    track: &mut Track,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(), IndexError> {
    let (version, flags, mut s) = full_box(trun)?;
    let count = u64::from(s.u32()?);
    if flags & 0x01 != 0 {
        s.skip(4)?; // data_offset
    }
    let first_flags = if flags & 0x04 != 0 {
        Some(s.u32()?)
    } else {
        None
    };
    let per_sample = [0x100, 0x200, 0x400, 0x800]
        .iter()
        .filter(|&&f| flags & f != 0)
        .count() as u64
        * 4;
    // The declared count must fit in the box: no loop runs on a count the data cannot back.
    if per_sample > 0 && count * per_sample > s.remaining() as u64 {
        return Err(IndexError::Malformed("trun shorter than its sample count"));
    }
    budget.add(count, limits)?;
    for i in 0..count {
        let duration = if flags & 0x100 != 0 {
            s.u32()?
        } else {
            default_duration
        };
        if flags & 0x200 != 0 {
            s.skip(4)?;
        }
        let sample_flags = if flags & 0x400 != 0 {
            s.u32()?
        } else if i == 0
            && let Some(f) = first_flags
        {
            f
        } else {
            default_flags
        };
        let cto = if flags & 0x800 != 0 {
            let raw = s.u32()?;
            // Version 0 says unsigned, but writers put negative offsets there too (as ffmpeg reads it).
            if version == 0 && raw <= i32::MAX as u32 {
                i64::from(raw)
            } else {
                i64::from(raw as i32)
            }
        } else {
            0
        };
        let sync = sample_flags & NON_SYNC == 0;
        track.timeline.sample(duration, cto, sync, limits)?;
    }
    Ok(())
}

impl Budget {
    fn add(&mut self, samples: u64, limits: &Limits) -> Result<(), IndexError> {
        self.samples = self.samples.saturating_add(samples);
        if self.samples > limits.max_samples {
            return Err(IndexError::Limit("too many samples"));
        }
        Ok(())
    }

    fn clock(&self, limits: &Limits) -> Result<(), IndexError> {
        if std::time::Instant::now() > self.deadline {
            return Err(IndexError::Timeout(limits.max_time));
        }
        Ok(())
    }
}

impl Track {
    /// Parses a `trak`: `None` if it is neither video nor audio. Returns (handler, enabled, track).
    fn parse(
        trak: &[u8],
        movie_timescale: u32,
        trex: &[(u32, (u32, u32))],
        limits: &Limits,
        budget: &mut Budget,
    ) -> Result<Option<([u8; 4], bool, Track)>, IndexError> {
        let boxes = children(trak)?;
        let tkhd = child(&boxes, b"tkhd").ok_or(IndexError::Malformed("no tkhd"))?;
        let (v, tkhd_flags, mut s) = full_box(tkhd)?;
        s.skip(if v == 1 { 16 } else { 8 })?;
        let id = s.u32()?;
        let enabled = tkhd_flags & 1 != 0;
        // A tkhd cut before its matrix (seen only in hand-made files) means no transform.
        let rotation = display_rotation(s, v).unwrap_or(0);
        let mdia = child(&boxes, b"mdia").ok_or(IndexError::Malformed("no mdia"))?;
        let mdia = children(mdia)?;
        let hdlr = child(&mdia, b"hdlr").ok_or(IndexError::Malformed("no hdlr"))?;
        let (_, _, mut s) = full_box(hdlr)?;
        s.skip(4)?;
        let handler = s.fourcc()?;
        if &handler != b"vide" && &handler != b"soun" {
            return Ok(None);
        }
        let mdhd = child(&mdia, b"mdhd").ok_or(IndexError::Malformed("no mdhd"))?;
        let (v, _, mut s) = full_box(mdhd)?;
        s.skip(if v == 1 { 16 } else { 8 })?;
        let timescale = s.u32()?;
        if timescale == 0 {
            return Err(IndexError::Malformed("zero timescale"));
        }
        let edit = match child(&boxes, b"edts").map(children).transpose()? {
            Some(edts) => match child(&edts, b"elst") {
                Some(elst) => parse_elst(elst, movie_timescale, timescale)?,
                None => Edit::default(),
            },
            None => Edit::default(),
        };
        let minf = child(&mdia, b"minf").ok_or(IndexError::Malformed("no minf"))?;
        let minf = children(minf)?;
        let stbl = child(&minf, b"stbl").ok_or(IndexError::Malformed("no stbl"))?;
        let stbl = children(stbl)?;
        let mut track = Track {
            id,
            timescale,
            edit,
            video_codec: None,
            rotation,
            audio_codec: None,
            trex: trex
                .iter()
                .find(|(t, _)| *t == id)
                .map_or((0, 0), |(_, d)| *d),
            timeline: Timeline::new(&handler == b"vide"),
        };
        if let Some(stsd) = child(&stbl, b"stsd") {
            sample_entry(stsd, &handler, &mut track)?;
        }
        sample_table(&stbl, &mut track, limits, budget)?;
        Ok(Some((handler, enabled, track)))
    }

    /// (start, end, keyframes) on the presentation timeline; start is `None` without samples.
    fn presentation(&self, limits: &Limits) -> Result<(Option<i64>, i64, Vec<i64>), IndexError> {
        let Some(min_pts) = self.timeline.min_pts else {
            return Ok((None, 0, Vec::new()));
        };
        let (shift, floor) = match self.edit.media_time {
            Some(mt) => (self.edit.empty.saturating_sub(mt), Some(self.edit.empty)),
            None => (0, None),
        };
        let first = min_pts.saturating_add(shift);
        let start = floor.map_or(first, |f| first.max(f));
        let end = self.timeline.max_end.saturating_add(shift);
        let mut keyframes: Vec<i64> = self
            .timeline
            .keyframes
            .iter()
            .flatten()
            .map(|k| k.saturating_add(shift))
            .collect();
        if keyframes.len() > limits.max_keyframes {
            return Err(IndexError::Limit("too many keyframes"));
        }
        keyframes.sort_unstable();
        keyframes.dedup();
        Ok((Some(start), end, keyframes))
    }
}

/// The rotation of a tkhd's display matrix (from just after its track ID), in degrees
/// counter-clockwise as ffprobe's `rotation` side data says it: -90 for a phone held upright.
fn display_rotation(mut s: Slice, version: u8) -> Result<i32, IndexError> {
    // reserved, duration; reserved[2], layer, alternate_group, volume, reserved.
    s.skip(if version == 1 { 12 } else { 8 } + 16)?;
    let a = f64::from(s.u32()? as i32);
    let b = f64::from(s.u32()? as i32);
    if a == 0.0 && b == 0.0 {
        return Ok(0);
    }
    let degrees = -b.atan2(a).to_degrees().round() as i32;
    // -180 and 180 are the same turn; ffprobe says 180.
    Ok(if degrees == -180 { 180 } else { degrees })
}

/// The edit list's leading empty time and the first media time, in the track's timescale.
fn parse_elst(elst: &[u8], movie_timescale: u32, timescale: u32) -> Result<Edit, IndexError> {
    let (v, _, mut s) = full_box(elst)?;
    let count = s.u32()? as usize;
    let mut edit = Edit::default();
    let mut empty_movie_ticks = 0u64;
    for _ in 0..count.min(MAX_EDITS) {
        let (duration, media_time) = if v == 1 {
            (s.u64()?, s.u64()? as i64)
        } else {
            (u64::from(s.u32()?), i64::from(s.u32()? as i32))
        };
        s.skip(4)?; // media_rate
        if media_time == -1 {
            empty_movie_ticks = empty_movie_ticks.saturating_add(duration);
            continue;
        }
        edit.media_time = Some(media_time.max(0));
        break;
    }
    if movie_timescale > 0 {
        let ticks =
            u128::from(empty_movie_ticks) * u128::from(timescale) / u128::from(movie_timescale);
        edit.empty = i64::try_from(ticks).map_err(|_| IndexError::Malformed("edit list"))?;
    }
    // An edit list of empty edits only shifts, as if the media started at 0.
    if edit.media_time.is_none() && edit.empty > 0 {
        edit.media_time = Some(0);
    }
    Ok(edit)
}

/// The first sample description: the codec.
fn sample_entry(stsd: &[u8], handler: &[u8; 4], track: &mut Track) -> Result<(), IndexError> {
    let (_, _, mut s) = full_box(stsd)?;
    let _count = s.u32()?;
    let Some((kind, body)) = children(s.rest())?.into_iter().next() else {
        return Ok(());
    };
    let name = String::from_utf8_lossy(&kind).trim().to_string();
    if handler == b"vide" {
        // SampleEntry (8) + VisualSampleEntry fields (70) before the child boxes.
        let boxes = body
            .get(78..)
            .map(children)
            .transpose()?
            .unwrap_or_default();
        track.video_codec = Some(match &kind {
            b"avc1" | b"avc3" => match child(&boxes, b"avcC") {
                Some(avcc) => VideoCodec::H264(codec::parse_avcc(kind, avcc)?),
                None => VideoCodec::Other(format!("{name} without avcC")),
            },
            b"hvc1" | b"hev1" => VideoCodec::Hevc,
            b"vp09" => VideoCodec::Vp9,
            b"vp08" => VideoCodec::Vp8,
            b"av01" => VideoCodec::Av1,
            _ => VideoCodec::Other(name),
        });
    } else {
        track.audio_codec = Some(match &kind {
            b"mp4a" => {
                // SampleEntry (8) + AudioSampleEntry (20), longer in QuickTime sound versions 1 and 2.
                let version = body
                    .get(8..10)
                    .map_or(0, |v| u16::from_be_bytes([v[0], v[1]]));
                let skip = match version {
                    1 => 28 + 16,
                    2 => 28 + 36,
                    _ => 28,
                };
                let boxes = body
                    .get(skip..)
                    .map(children)
                    .transpose()?
                    .unwrap_or_default();
                let wave = child(&boxes, b"wave").map(children).transpose()?;
                let esds = child(&boxes, b"esds")
                    .or_else(|| wave.as_ref().and_then(|w| child(w, b"esds")));
                match esds {
                    Some(esds) => codec::parse_esds(esds.get(4..).unwrap_or(&[])),
                    None => AudioCodec::Other("mp4a without esds".into()),
                }
            }
            _ => AudioCodec::Other(name),
        });
    }
    Ok(())
}

/// Walks stts (durations), ctts (composition offsets) and stss (sync samples) together.
fn sample_table(
    stbl: &[Child<'_>],
    track: &mut Track,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<(), IndexError> {
    let Some(stts) = child(stbl, b"stts") else {
        return Ok(());
    };
    let (_, _, mut stts) = full_box(stts)?;
    let stts_count = stts.u32()? as usize;
    if stts_count.saturating_mul(8) > stts.remaining() {
        return Err(IndexError::Malformed("stts shorter than its entry count"));
    }
    let total: u64 = stts
        .rest()
        .chunks_exact(8)
        .take(stts_count)
        .map(|e| u64::from(u32::from_be_bytes([e[0], e[1], e[2], e[3]])))
        .sum();
    budget.add(total, limits)?;

    let mut ctts = match child(stbl, b"ctts") {
        Some(ctts) => {
            let (v, _, mut s) = full_box(ctts)?;
            let n = s.u32()? as usize;
            if n.saturating_mul(8) > s.remaining() {
                return Err(IndexError::Malformed("ctts shorter than its entry count"));
            }
            Some((v, n, s))
        }
        None => None,
    };
    let mut stss = match child(stbl, b"stss") {
        Some(stss) => {
            let (_, _, mut s) = full_box(stss)?;
            let n = s.u32()? as usize;
            if n.saturating_mul(4) > s.remaining() {
                return Err(IndexError::Malformed("stss shorter than its entry count"));
            }
            Some((n, s))
        }
        None => None,
    };
    // Current ctts run: samples left in it and its offset.
    let (mut ctts_left, mut cto) = (0u32, 0i64);
    let mut next_sync: Option<u32> = None;
    let mut sample = 0u32; // 1-based number of the current sample
    for _ in 0..stts_count {
        let count = stts.u32()?;
        let delta = stts.u32()?;
        for _ in 0..count {
            sample = sample.wrapping_add(1);
            if u64::from(sample) % CLOCK_EVERY == 0 {
                budget.clock(limits)?;
            }
            if let Some((version, left, s)) = ctts.as_mut() {
                while ctts_left == 0 && *left > 0 {
                    *left -= 1;
                    ctts_left = s.u32()?;
                    let raw = s.u32()?;
                    cto = if *version == 0 && raw <= i32::MAX as u32 {
                        i64::from(raw)
                    } else {
                        i64::from(raw as i32)
                    };
                }
                ctts_left = ctts_left.saturating_sub(1);
            }
            let sync = match stss.as_mut() {
                None => true,
                Some((left, s)) => {
                    // Sync sample numbers ascend; skip any that are behind (damaged tables).
                    while next_sync.is_none_or(|n| n < sample) && *left > 0 {
                        *left -= 1;
                        next_sync = Some(s.u32()?);
                    }
                    next_sync == Some(sample)
                }
            };
            track.timeline.sample(delta, cto, sync, limits)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::index::Index;

    #[test]
    fn box_headers() {
        assert_eq!(
            box_header(b"\0\0\0\x10moov").unwrap(),
            (*b"moov", 8, Some(16))
        );
        assert_eq!(box_header(b"\0\0\0\0mdat").unwrap(), (*b"mdat", 8, None));
        assert_eq!(
            box_header(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x20").unwrap(),
            (*b"mdat", 16, Some(32))
        );
        assert!(box_header(b"\0\0\0\x04moov").is_err());
        assert!(box_header(b"\0\0\0\x01mdat\0\0\0\0\0\0\0\x08").is_err());
        assert!(box_header(b"\0\0").is_err());
    }

    /// A box of `kind` around `body`.
    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = (8 + body.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    /// A full box: version 0, flags, then `body`.
    fn full(kind: &[u8; 4], flags: u32, body: &[u8]) -> Vec<u8> {
        let mut b = flags.to_be_bytes().to_vec();
        b.extend_from_slice(body);
        bx(kind, &b)
    }

    fn be(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// A one-track video movie at 1000 ticks/s with the given stts entries, stss samples and
    /// optional elst (empty ms, media time), plus a trex for fragments.
    fn movie(stts: &[(u32, u32)], stss: Option<&[u32]>, elst: Option<(u32, i32)>) -> Vec<u8> {
        let mvhd = full(b"mvhd", 0, &be(&[0, 0, 1000, 0]));
        let tkhd = full(b"tkhd", 1, &be(&[0, 0, 1]));
        let mdhd = full(b"mdhd", 0, &be(&[0, 0, 1000, 0]));
        let hdlr = full(b"hdlr", 0, b"\0\0\0\0vide");
        let mut stts_body = be(&[stts.len() as u32]);
        for &(n, d) in stts {
            stts_body.extend(be(&[n, d]));
        }
        let mut stbl = full(b"stts", 0, &stts_body);
        if let Some(sync) = stss {
            let mut b = be(&[sync.len() as u32]);
            b.extend(be(sync));
            stbl.extend(full(b"stss", 0, &b));
        }
        let minf = bx(b"minf", &bx(b"stbl", &stbl));
        let mdia = bx(b"mdia", &[mdhd, hdlr, minf].concat());
        let mut trak = [tkhd, mdia].concat();
        if let Some((empty, media_time)) = elst {
            let elst = full(
                b"elst",
                0,
                &be(&[2, empty, u32::MAX, 1 << 16, 0, media_time as u32, 1 << 16]),
            );
            trak.extend(bx(b"edts", &elst));
        }
        let trex = full(b"trex", 0, &be(&[1, 1, 40, 0, NON_SYNC]));
        let moov = [mvhd, bx(b"trak", &trak), bx(b"mvex", &trex)].concat();
        [bx(b"ftyp", b"isom"), bx(b"moov", &moov)].concat()
    }

    fn run_index(data: &[u8], limits: &Limits) -> Result<Index, IndexError> {
        super::super::index_reader(std::io::Cursor::new(data), limits)
    }

    #[test]
    fn sample_tables_with_edits() {
        // 10 frames of 40 ms, keyframes at samples 1 and 6, shown from media time 80 after 500 ms.
        let data = movie(&[(10, 40)], Some(&[1, 6]), Some((500, 80)));
        let ix = run_index(&data, &Limits::default()).unwrap();
        let v = ix.video.unwrap();
        assert_eq!(v.keyframes, [420, 620]);
        assert_eq!((v.start, v.end), (500, 820));
        assert_eq!(ix.method, Method::SampleTable);
        // Without stss every sample is a keyframe.
        let v = run_index(&movie(&[(3, 40)], None, None), &Limits::default())
            .unwrap()
            .video
            .unwrap();
        assert_eq!(v.keyframes, [0, 40, 80]);
    }

    #[test]
    fn hostile_counts_hit_limits_not_memory() {
        let limits = Limits {
            max_samples: 1000,
            ..Limits::default()
        };
        // Four billion samples declared in 8 bytes.
        let data = movie(&[(u32::MAX, 1)], Some(&[1]), None);
        assert!(matches!(
            run_index(&data, &limits),
            Err(IndexError::Limit(_))
        ));
        // An stss that claims more entries than it holds.
        let mut data = movie(&[(10, 1)], Some(&[1]), None);
        let at = data.windows(4).position(|w| w == b"stss").unwrap() + 8;
        data[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            run_index(&data, &limits),
            Err(IndexError::Malformed(_))
        ));
        // A trun of four billion samples with no per-sample fields, after an empty moov.
        let trun = full(b"trun", 0, &be(&[u32::MAX]));
        let traf = bx(b"traf", &[full(b"tfhd", 0, &be(&[1])), trun].concat());
        let mut data = movie(&[], None, None);
        data.extend(bx(b"moof", &traf));
        assert!(matches!(
            run_index(&data, &limits),
            Err(IndexError::Limit(_))
        ));
        // Every sample a keyframe, past the keyframe limit.
        let limits = Limits {
            max_keyframes: 5,
            ..Limits::default()
        };
        let data = movie(&[(10, 1)], None, None);
        assert!(matches!(
            run_index(&data, &limits),
            Err(IndexError::Limit(_))
        ));
        // A moov larger than the box limit.
        let limits = Limits {
            max_box_bytes: 64,
            ..Limits::default()
        };
        assert!(matches!(
            run_index(&data, &limits),
            Err(IndexError::Limit(_))
        ));
    }

    #[test]
    fn fragments_follow_trex_defaults_and_tfdt() {
        // trex: 40 ms, non-sync; each trun's first sample is sync; the second moof has a tfdt.
        let mut data = movie(&[], None, None);
        for (tfdt, n) in [(None, 3u32), (Some(1000u32), 2)] {
            let mut traf = full(b"tfhd", 0, &be(&[1]));
            if let Some(t) = tfdt {
                traf.extend(full(b"tfdt", 0, &be(&[t])));
            }
            traf.extend(full(b"trun", 0x04, &be(&[n, 0])));
            data.extend(bx(b"moof", &bx(b"traf", &traf)));
            data.extend(bx(b"mdat", &[0; 16]));
        }
        let ix = run_index(&data, &Limits::default()).unwrap();
        assert_eq!(ix.method, Method::Fragments);
        let v = ix.video.unwrap();
        assert_eq!(v.keyframes, [0, 1000]);
        assert_eq!((v.start, v.end), (0, 1080));
    }

    #[test]
    fn children_reject_overruns() {
        assert!(children(b"\0\0\0\x20free").is_err());
        let kids = children(b"\0\0\0\x09free!\0\0\0\x08skip").unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].1, b"!");
    }
}
