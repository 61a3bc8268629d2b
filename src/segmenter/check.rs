//! Invariants every segmenter output must keep whatever the input; shared by tests and fuzz targets.

use std::time::Duration;

use super::packet::{PACKET_SIZE, Packet, SYNC_BYTE};
use super::{
    Cuts, MAX_PTS_STEP, MAX_SEGMENT_BYTES, MIN_SEGMENT_PACKETS, Segment, Segmenter, Stats, pes, psi,
};

/// Packets a segment may hold beyond `MAX_SEGMENT_BYTES`: the one that crossed the limit.
const OVERSHOOT_BYTES: usize = PACKET_SIZE;

/// Inserted packets at the head of every segment (PAT, PMT).
const HEAD_PACKETS: usize = 2;

/// Feeds `input` to a fresh segmenter (cutting with [`Cuts::KeyframesOrTime`]) in chunks of the
/// given lengths (the rest in one piece), then finishes; lengths beyond the input are clamped.
pub fn run_split(
    target: Duration,
    input: &[u8],
    chunk_lens: impl IntoIterator<Item = usize>,
) -> (Vec<Segment>, Stats) {
    run_split_with(Cuts::KeyframesOrTime, target, input, chunk_lens)
}

/// [`run_split`] with a segmenter that cuts as `cuts` says.
pub fn run_split_with(
    cuts: Cuts,
    target: Duration,
    input: &[u8],
    chunk_lens: impl IntoIterator<Item = usize>,
) -> (Vec<Segment>, Stats) {
    let mut s = Segmenter::with_cuts(target, cuts);
    let mut out = Vec::new();
    let mut rest = input;
    for len in chunk_lens {
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        s.push(chunk, &mut out);
        rest = tail;
    }
    s.push(rest, &mut out);
    out.extend(s.finish());
    (out, s.stats())
}

/// Runs `input` in one piece and split at `chunk_lens` through both kinds of [`Cuts`], checks each
/// whole output with [`check_segments_with`] (and [`check_keyframes_only`] and
/// [`check_renumbered`] for [`Cuts::KeyframesOnly`])
/// and that the chunking changed nothing, stats included. Returns the segments of
/// [`Cuts::KeyframesOrTime`].
pub fn stream_case(
    target: Duration,
    input: &[u8],
    chunk_lens: &[usize],
) -> Result<Vec<Segment>, String> {
    let only = cuts_case(Cuts::KeyframesOnly, target, input, chunk_lens)
        .map_err(|e| format!("cutting at keyframes only: {e}"))?;
    check_keyframes_only(&only.0, only.1)
        .and_then(|()| check_renumbered(&only.0))
        .map_err(|e| format!("cutting at keyframes only: {e}"))?;
    cuts_case(Cuts::KeyframesOrTime, target, input, chunk_lens).map(|(segments, _)| segments)
}

fn cuts_case(
    cuts: Cuts,
    target: Duration,
    input: &[u8],
    chunk_lens: &[usize],
) -> Result<(Vec<Segment>, Stats), String> {
    let (whole, stats) = run_split_with(cuts, target, input, []);
    check_segments_with(cuts, input, &whole)?;
    if stats.skipped_bytes > input.len() as u64 {
        return Err(format!(
            "skipped {} bytes of {}",
            stats.skipped_bytes,
            input.len()
        ));
    }
    let (split, split_stats) = run_split_with(cuts, target, input, chunk_lens.iter().copied());
    same_segments(&whole, &split).map_err(|e| format!("chunking changed the result: {e}"))?;
    if split_stats != stats {
        return Err(format!(
            "chunking changed the stats: {stats:?} versus {split_stats:?}"
        ));
    }
    Ok((whole, stats))
}

/// Checks what [`Cuts::KeyframesOnly`] adds: a segment whose PMT lists video starts with a
/// keyframe unless [`MAX_SEGMENT_BYTES`] forced its cut (`stats` counts those).
pub fn check_keyframes_only(segments: &[Segment], stats: Stats) -> Result<(), String> {
    let mut unkeyed = 0u64;
    for seg in segments.iter().filter(|seg| !seg.starts_with_keyframe) {
        let mut head = seg.bytes.chunks_exact(PACKET_SIZE).skip(1);
        // The segmenter follows video only on a PID that is not PAT, null or the PMT's own.
        let has_video = head.next().and_then(Packet::parse).is_some_and(|pmt| {
            psi::parse_pmt(pmt.payload).is_some_and(|info| {
                info.streams
                    .iter()
                    .any(|es| es.is_video() && ![0, 0x1FFF, pmt.pid].contains(&es.pid))
            })
        });
        if has_video {
            unkeyed += 1;
        }
    }
    if unkeyed > stats.forced_cuts {
        return Err(format!(
            "{unkeyed} segments of a program with video start without a keyframe, but only {} \
             cuts were forced by size",
            stats.forced_cuts
        ));
    }
    Ok(())
}

/// Bytes at the start of a [`raw_case`] input that pick the target and the chunking.
pub const RAW_CONFIG_BYTES: usize = 3;

/// The raw-bytes fuzz case: byte 0 picks the target (25 ms steps up to 6.375 s), bytes 1 and 2
/// seed the chunk lengths, the rest is the stream; then [`stream_case`].
pub fn raw_case(data: &[u8]) -> Result<(), String> {
    let (config, input) = data.split_at(data.len().min(RAW_CONFIG_BYTES));
    let byte = |i: usize| config.get(i).copied().unwrap_or(0);
    let target = Duration::from_millis(u64::from(byte(0)) * 25);
    let seed = u64::from(u16::from_le_bytes([byte(1), byte(2)]));
    stream_case(target, input, &chunk_lens(seed, input.len())).map(drop)
}

/// Pseudo-random chunk lengths covering `total` bytes: empty chunks, single bytes, lengths around
/// a packet and long runs, so packets straddle chunks in every way.
pub fn chunk_lens(seed: u64, total: usize) -> Vec<usize> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut lens = Vec::new();
    let mut sum = 0;
    while sum < total {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let r = (x >> 8) as usize;
        let len = match x % 6 {
            0 => 0,
            1 => 1 + r % 4,
            2 => PACKET_SIZE - 2 + r % 5,
            3 => r % (3 * PACKET_SIZE),
            _ => r % 8192,
        };
        lens.push(len);
        sum += len;
    }
    lens
}

/// Checks what must hold for the output of a fresh [`Segmenter`] fed `input` (in any chunks):
/// - sequence numbers are 0, 1, 2, ...;
/// - every segment is a non-empty run of whole 188-byte packets starting with 0x47, at most
///   `MAX_SEGMENT_BYTES` plus one packet, with a duration no longer than two `MAX_PTS_STEP`;
/// - it starts with a PAT, then a PMT on that PAT's PMT PID for its program, then a PES start with
///   the segment's `pts_start` on a stream that PMT lists (the PMT's video PID with the random
///   access flag if `starts_with_keyframe`); the PAT and PMT are packets of the input;
/// - the packets after the head, across all segments, are input packets in input order, none used
///   twice: nothing invented, reordered or duplicated, except null packets padding a segment to
///   `MIN_SEGMENT_PACKETS`. In particular the output is at most the input plus two packets per
///   segment, plus that padding.
fn is_null_packet(p: &[u8]) -> bool {
    p.len() == PACKET_SIZE && p[0] == 0x47 && p[1] & 0x1F == 0x1F && p[2] == 0xFF
}

pub fn check_segments(input: &[u8], segments: &[Segment]) -> Result<(), String> {
    check_segments_with(Cuts::KeyframesOrTime, input, segments)
}

/// [`check_segments`] for the output of a segmenter that cuts as `cuts` says: with
/// [`Cuts::KeyframesOnly`] packets match input packets up to their continuity counter, which
/// [`check_renumbered`] checks instead.
pub fn check_segments_with(cuts: Cuts, input: &[u8], segments: &[Segment]) -> Result<(), String> {
    let same: fn(&[u8], &[u8]) -> bool = match cuts {
        Cuts::KeyframesOrTime => |a, b| a == b,
        Cuts::KeyframesOnly => same_but_continuity,
    };
    let total: usize = segments.iter().map(|s| s.bytes.len()).sum();
    let bound = input.len() + segments.len() * MIN_SEGMENT_PACKETS * PACKET_SIZE;
    if total > bound {
        return Err(format!(
            "{total} output bytes exceed {bound} (input plus inserted tables)"
        ));
    }
    // Input offset after the last body packet matched so far.
    let mut cursor = 0;
    for (i, seg) in segments.iter().enumerate() {
        let fail = |msg: String| format!("segment {i} (sequence {}): {msg}", seg.sequence);
        check_one(seg, i).map_err(fail)?;
        let all: Vec<&[u8]> = seg.bytes.chunks_exact(PACKET_SIZE).collect();
        // Padding: null packets ending a segment of exactly the minimum size (after PAT, PMT and
        // at least one packet of the input).
        let padding = if all.len() == MIN_SEGMENT_PACKETS {
            all.iter()
                .rev()
                .take_while(|p| is_null_packet(p))
                .count()
                .min(MIN_SEGMENT_PACKETS - HEAD_PACKETS - 1)
        } else {
            0
        };
        let body_end = all.len() - padding;
        let mut packets = all[..body_end].iter().copied();
        let heads: Vec<&[u8]> = packets.by_ref().take(HEAD_PACKETS).collect();
        for (k, p) in packets.enumerate() {
            let Some(at) = find_packet(input, cursor, p, same) else {
                return Err(fail(format!(
                    "packet {} is not an input packet after offset {cursor} (invented, reordered or \
                     duplicated)",
                    k + HEAD_PACKETS
                )));
            };
            cursor = at + PACKET_SIZE;
            if k == 0 {
                // The tables usually come shortly before the packet that started the segment:
                // search backwards from there first. (Not only there: with repeated input the match
                // for the start packet may be an earlier copy than the one the segmenter took.)
                for head in &heads {
                    if !rfind_packet(&input[..at], head, same)
                        && find_packet(input, at, head, same).is_none()
                    {
                        return Err(fail("inserted PAT/PMT is not an input packet".into()));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The checks that need only the segment itself.
fn check_one(seg: &Segment, index: usize) -> Result<(), String> {
    if seg.sequence != index as u64 {
        return Err(format!("sequence should be {index}"));
    }
    let len = seg.bytes.len();
    if len == 0 || !len.is_multiple_of(PACKET_SIZE) {
        return Err(format!("{len} bytes is not a non-zero multiple of 188"));
    }
    if len > MAX_SEGMENT_BYTES + OVERSHOOT_BYTES {
        return Err(format!("{len} bytes is over the segment size limit"));
    }
    if seg.duration > MAX_PTS_STEP * 2 {
        return Err(format!("implausible duration {:?}", seg.duration));
    }
    if seg.pts_start > pes::PTS_MASK {
        return Err(format!("pts_start {} is not a 33-bit PTS", seg.pts_start));
    }
    if let Some(k) = seg
        .bytes
        .chunks_exact(PACKET_SIZE)
        .position(|p| p[0] != SYNC_BYTE)
    {
        return Err(format!("packet {k} lacks the sync byte"));
    }
    let mut head = seg.bytes.chunks_exact(PACKET_SIZE).map(Packet::parse);
    let (Some(Some(pat)), Some(Some(pmt)), Some(Some(first))) =
        (head.next(), head.next(), head.next())
    else {
        return Err("fewer than three parseable packets".into());
    };
    let pat_info = (pat.pid == 0 && pat.pusi)
        .then(|| psi::parse_pat(pat.payload))
        .flatten()
        .ok_or("first packet is not a PAT")?;
    let pmt_info = (pmt.pid == pat_info.pmt_pid && pmt.pusi)
        .then(|| psi::parse_pmt(pmt.payload))
        .flatten()
        .filter(|p| p.program_number == pat_info.program_number)
        .ok_or("second packet is not the PAT's PMT")?;
    if !first.pusi || !pmt_info.streams.iter().any(|es| es.pid == first.pid) {
        return Err("third packet is not a PES start on a stream of the PMT".into());
    }
    if pes::pts(first.payload) != Some(seg.pts_start) {
        return Err("third packet's PTS is not pts_start".into());
    }
    if seg.starts_with_keyframe {
        let video = pmt_info
            .streams
            .iter()
            .find(|es| es.is_video() && es.pid != 0 && es.pid != 0x1FFF && es.pid != pmt.pid)
            .map(|es| es.pid);
        if video != Some(first.pid) || !first.rai {
            return Err("starts_with_keyframe but the third packet is no video keyframe".into());
        }
    }
    Ok(())
}

/// Offset of the first copy of `packet` in `input` at or after `from`, by `same`.
fn find_packet(
    input: &[u8],
    from: usize,
    packet: &[u8],
    same: fn(&[u8], &[u8]) -> bool,
) -> Option<usize> {
    let first = *packet.first()?;
    let last = input.len().checked_sub(packet.len())?;
    (from..=last).find(|&i| input[i] == first && same(&input[i..i + packet.len()], packet))
}

/// Whether `input` contains a copy of `packet` by `same`, searching from the end.
fn rfind_packet(input: &[u8], packet: &[u8], same: fn(&[u8], &[u8]) -> bool) -> bool {
    let (Some(&first), Some(last)) = (packet.first(), input.len().checked_sub(packet.len())) else {
        return false;
    };
    (0..=last)
        .rev()
        .any(|i| input[i] == first && same(&input[i..i + packet.len()], packet))
}

/// Whether two packets are the same but for the continuity counter (byte 3's low nibble).
fn same_but_continuity(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.len() > 4
        && a[..3] == b[..3]
        && a[3] & 0xF0 == b[3] & 0xF0
        && a[4..] == b[4..]
}

/// Checks [`Cuts::KeyframesOnly`]'s numbering: in every segment, on every PID but the null
/// PID, the packets with payload count 0, 1, 2, ... (mod 16) and those without repeat the
/// count (15 before the first).
pub fn check_renumbered(segments: &[Segment]) -> Result<(), String> {
    for seg in segments {
        let mut counts: Vec<(u16, u8)> = Vec::new();
        for (k, p) in seg.bytes.chunks_exact(PACKET_SIZE).enumerate() {
            let pid = u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
            if pid == 0x1FFF {
                continue;
            }
            let i = counts
                .iter()
                .position(|&(q, _)| q == pid)
                .unwrap_or_else(|| {
                    counts.push((pid, 0x0F));
                    counts.len() - 1
                });
            if p[3] & 0x10 != 0 {
                counts[i].1 = (counts[i].1 + 1) & 0x0F;
            }
            if p[3] & 0x0F != counts[i].1 {
                return Err(format!(
                    "segment {}: packet {k} on PID {pid} has continuity counter {}, not {}",
                    seg.sequence,
                    p[3] & 0x0F,
                    counts[i].1
                ));
            }
        }
    }
    Ok(())
}

/// Checks that two runs gave the same segments, field by field and byte by byte.
pub fn same_segments(a: &[Segment], b: &[Segment]) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("{} segments versus {}", a.len(), b.len()));
    }
    for (x, y) in a.iter().zip(b) {
        let fields = |s: &Segment| (s.sequence, s.pts_start, s.duration, s.starts_with_keyframe);
        if fields(x) != fields(y) {
            return Err(format!(
                "segment {}: {:?} versus {:?}",
                x.sequence,
                fields(x),
                fields(y)
            ));
        }
        if x.bytes != y.bytes {
            let at = x
                .bytes
                .iter()
                .zip(y.bytes.iter())
                .position(|(p, q)| p != q)
                .unwrap_or(x.bytes.len().min(y.bytes.len()));
            return Err(format!(
                "segment {}: bytes differ at {at} ({} versus {} bytes)",
                x.sequence,
                x.bytes.len(),
                y.bytes.len()
            ));
        }
    }
    Ok(())
}
