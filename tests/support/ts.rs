//! A small MPEG-TS reader, independent of the server's segmenter, checking that a segment is self-contained.

use super::http;

pub const PACKET_SIZE: usize = 188;
const SYNC_BYTE: u8 = 0x47;
const PAT_PID: u16 = 0;
const NULL_PID: u16 = 0x1fff;
/// `stream_type` of H.264 video in a PMT (ISO/IEC 13818-1 table 2-34).
const STREAM_TYPE_H264: u8 = 0x1b;
/// Video stream types a PMT may announce; any of these in an audio-only stream is a bug.
const VIDEO_STREAM_TYPES: [u8; 5] = [0x01, 0x02, 0x10, 0x1b, 0x24];
/// Fewest packets GStreamer 1.22's hlsdemux2 accepts in a segment: it needs four sync points to
/// find packet alignment (`find_offset` in gsthlsdemux-util.c) and fails the stream otherwise, so a
/// final segment of PAT + PMT + one packet stops playback with "Internal data stream error".
pub const MIN_PACKETS: usize = 4;
/// Media type of a segment (RFC 8216 section 3.2).
pub const SEGMENT_MIME: &str = "video/mp2t";

/// The parts of one transport packet the checks need.
#[derive(Debug)]
pub struct Packet<'a> {
    pub pid: u16,
    pub pusi: bool,
    pub random_access: bool,
    pub payload: &'a [u8],
}

/// Parses one 188-byte packet.
pub fn parse_packet(p: &[u8]) -> Result<Packet<'_>, String> {
    if p.len() != PACKET_SIZE {
        return Err(format!("packet of {} bytes", p.len()));
    }
    if p[0] != SYNC_BYTE {
        return Err(format!("sync byte 0x{:02x}", p[0]));
    }
    let pusi = p[1] & 0x40 != 0;
    let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
    let control = (p[3] >> 4) & 0x3;
    let mut offset = 4;
    let mut random_access = false;
    if control & 0x2 != 0 {
        let len = usize::from(p[4]);
        if 5 + len > PACKET_SIZE {
            return Err(format!(
                "adaptation field of {len} bytes overruns the packet"
            ));
        }
        random_access = len > 0 && p[5] & 0x40 != 0;
        offset = 5 + len;
    }
    let payload = if control & 0x1 != 0 {
        &p[offset..]
    } else {
        &[][..]
    };
    Ok(Packet {
        pid,
        pusi,
        random_access,
        payload,
    })
}

/// MPEG-2 CRC-32 as PSI sections use it (polynomial 0x04c11db7, no reflection, no final xor).
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The section body (after the 8-byte long header, before the CRC) of a PSI packet that holds a whole
/// section, after checking its table id and CRC.
fn section<'a>(packet: &Packet<'a>, table_id: u8, what: &str) -> Result<&'a [u8], String> {
    if !packet.pusi {
        return Err(format!(
            "{what} packet does not start a section (PUSI clear)"
        ));
    }
    let pointer = usize::from(
        *packet
            .payload
            .first()
            .ok_or(format!("{what}: no payload"))?,
    );
    let data = packet
        .payload
        .get(1 + pointer..)
        .ok_or(format!("{what}: pointer field past the payload"))?;
    if data.len() < 3 || data[0] != table_id {
        return Err(format!(
            "{what}: table_id {:?}, wanted {table_id}",
            data.first()
        ));
    }
    let length = usize::from(data[1] & 0x0f) << 8 | usize::from(data[2]);
    let whole = data.get(..3 + length).ok_or(format!(
        "{what}: section of {length} bytes does not fit in one packet"
    ))?;
    if length < 9 {
        return Err(format!("{what}: section too short ({length})"));
    }
    if crc32_mpeg2(whole) != 0 {
        return Err(format!("{what}: CRC mismatch"));
    }
    Ok(&whole[8..whole.len() - 4])
}

/// Streams announced by a PMT: (stream_type, elementary PID).
fn pmt_streams(body: &[u8]) -> Result<Vec<(u8, u16)>, String> {
    let info_len = usize::from(body.get(2).ok_or("PMT too short")? & 0x0f) << 8
        | usize::from(*body.get(3).ok_or("PMT too short")?);
    let mut rest = body
        .get(4 + info_len..)
        .ok_or("PMT program_info overruns")?;
    let mut streams = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 5 {
            return Err("PMT stream entry truncated".into());
        }
        let pid = u16::from(rest[1] & 0x1f) << 8 | u16::from(rest[2]);
        let es_len = usize::from(rest[3] & 0x0f) << 8 | usize::from(rest[4]);
        streams.push((rest[0], pid));
        rest = rest.get(5 + es_len..).ok_or("PMT ES info overruns")?;
    }
    Ok(streams)
}

/// What a segment's head announced.
#[derive(Debug)]
pub struct SegmentInfo {
    pub pmt_pid: u16,
    pub streams: Vec<(u8, u16)>,
    pub packets: usize,
    /// PTS (90 kHz) of the first PES that starts in the segment.
    pub first_pts: Option<u64>,
}

/// PTS of the PES that starts in `packet`, if it carries one.
pub fn pes_pts(packet: &Packet<'_>) -> Option<u64> {
    let pes = packet.payload;
    if !packet.pusi || pes.len() < 14 || pes[..3] != [0, 0, 1] || pes[7] & 0x80 == 0 {
        return None;
    }
    let b = &pes[9..14];
    Some(
        (u64::from(b[0] >> 1) & 0x07) << 30
            | u64::from(b[1]) << 22
            | (u64::from(b[2]) >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4]) >> 1,
    )
}

/// Checks one segment: whole packets, PAT then PMT first, and for video a random-access point next
/// whose PES carries SPS, PPS and an IDR picture, so the segment decodes on its own
/// (which `#EXT-X-INDEPENDENT-SEGMENTS` promises).
pub fn check_segment(bytes: &[u8], expect_video: bool) -> Result<SegmentInfo, String> {
    if bytes.is_empty() {
        return Err("empty segment".into());
    }
    if !bytes.len().is_multiple_of(PACKET_SIZE) {
        return Err(format!(
            "{} bytes is not a whole number of {PACKET_SIZE}-byte packets",
            bytes.len()
        ));
    }
    let packets = bytes
        .chunks(PACKET_SIZE)
        .enumerate()
        .map(|(i, p)| parse_packet(p).map_err(|e| format!("packet {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if packets.len() < MIN_PACKETS {
        return Err(format!(
            "{} packets; GStreamer's hlsdemux2 rejects segments of fewer than {MIN_PACKETS}",
            packets.len()
        ));
    }

    let pat = &packets[0];
    if pat.pid != PAT_PID {
        return Err(format!("first packet is on PID {}, not the PAT", pat.pid));
    }
    let pat_body = section(pat, 0x00, "PAT")?;
    let pmt_pid = pat_body
        .chunks_exact(4)
        .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) != 0)
        .map(|entry| u16::from(entry[2] & 0x1f) << 8 | u16::from(entry[3]))
        .ok_or("PAT lists no program")?;

    let pmt = &packets[1];
    if pmt.pid != pmt_pid {
        return Err(format!(
            "second packet is on PID {}, not the PMT PID {pmt_pid} from the PAT",
            pmt.pid
        ));
    }
    let streams = pmt_streams(section(pmt, 0x02, "PMT")?)?;
    if streams.is_empty() {
        return Err("PMT lists no streams".into());
    }
    let video_pid = streams
        .iter()
        .find(|(t, _)| *t == STREAM_TYPE_H264)
        .map(|&(_, pid)| pid);
    let first_pts = packets
        .iter()
        .filter(|p| ![PAT_PID, pmt_pid, NULL_PID].contains(&p.pid))
        .find_map(pes_pts);
    let info = SegmentInfo {
        pmt_pid,
        streams: streams.clone(),
        packets: packets.len(),
        first_pts,
    };
    if !expect_video {
        if let Some((t, pid)) = streams.iter().find(|(t, _)| VIDEO_STREAM_TYPES.contains(t)) {
            return Err(format!(
                "PMT announces video (type 0x{t:02x}, PID {pid}) for a file without video"
            ));
        }
        return Ok(info);
    }
    let video_pid = video_pid.ok_or(format!("PMT has no H.264 stream: {streams:?}"))?;

    // Repeated PSI and stuffing may come before the picture; any media packet may not.
    let (first, packet) = packets
        .iter()
        .enumerate()
        .skip(2)
        .find(|(_, p)| ![PAT_PID, pmt_pid, NULL_PID].contains(&p.pid))
        .ok_or("no media packet after PAT and PMT")?;
    if packet.pid != video_pid {
        return Err(format!(
            "first media packet (index {first}) is on PID {}, not the video PID {video_pid}",
            packet.pid
        ));
    }
    if !packet.random_access {
        return Err(format!(
            "first video packet (index {first}) lacks random_access_indicator"
        ));
    }
    if !packet.pusi {
        return Err(format!(
            "first video packet (index {first}) does not start a PES"
        ));
    }
    let mut pes = packet.payload.to_vec();
    for p in packets[first + 1..].iter().filter(|p| p.pid == video_pid) {
        if p.pusi {
            break;
        }
        pes.extend_from_slice(p.payload);
    }
    check_idr_pes(&pes).map_err(|e| format!("first video PES (packet index {first}): {e}"))?;
    Ok(info)
}

/// Checks that a PES packet's H.264 payload has SPS and PPS before an IDR slice.
fn check_idr_pes(pes: &[u8]) -> Result<(), String> {
    if pes.len() < 9 || pes[..3] != [0, 0, 1] {
        return Err("no PES start code".into());
    }
    if !(0xe0..=0xef).contains(&pes[3]) {
        return Err(format!("stream_id 0x{:02x} is not video", pes[3]));
    }
    let es = pes
        .get(9 + usize::from(pes[8])..)
        .ok_or("PES header overruns")?;
    let types = nal_types(es);
    let pos = |t: u8| types.iter().position(|&x| x == t);
    let idr = pos(5).ok_or(format!("no IDR slice (NAL types {types:?})"))?;
    match (pos(7), pos(8)) {
        (Some(sps), Some(pps)) if sps < idr && pps < idr => Ok(()),
        _ => Err(format!(
            "SPS and PPS must precede the IDR for the segment to decode alone (NAL types {types:?})"
        )),
    }
}

/// NAL unit types in an Annex B byte stream, in order.
fn nal_types(es: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i..i + 3] == [0, 0, 1] {
            types.push(es[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// Fetches a segment: status 200 and the TS media type.
pub fn fetch_segment(url: &str) -> Result<Vec<u8>, String> {
    Ok(http::get_ok(url, SEGMENT_MIME)?.body)
}
