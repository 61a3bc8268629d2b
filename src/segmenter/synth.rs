//! Writes TS packets (PAT, PMT, PES starts, continuations) and rewrites PTS, for tests, fuzzing and benches.

use super::packet::{PACKET_SIZE, Packet, SYNC_BYTE};
use super::pes::PTS_MASK;
use super::psi::crc32_mpeg2;

/// Largest payload of a packet that carries an adaptation field with flags.
const MAX_PAYLOAD_WITH_FLAGS: usize = PACKET_SIZE - 6;

/// One packet on `pid` with continuity counter `cc`, carrying as much of `payload` as fits; shorter
/// payloads are padded with adaptation-field stuffing, which also carries `rai` (random access).
pub fn packet(pid: u16, pusi: bool, rai: bool, cc: u8, payload: &[u8]) -> [u8; PACKET_SIZE] {
    let mut p = [0xFF; PACKET_SIZE];
    let room = if rai {
        MAX_PAYLOAD_WITH_FLAGS
    } else {
        PACKET_SIZE - 4
    };
    let payload = payload.get(..room).unwrap_or(payload);
    p[0] = SYNC_BYTE;
    p[1] = (u8::from(pusi) << 6) | ((pid >> 8) as u8 & 0x1F);
    p[2] = pid as u8;
    let start = if payload.len() == PACKET_SIZE - 4 {
        p[3] = 0x10 | (cc & 0x0F);
        4
    } else {
        p[3] = 0x30 | (cc & 0x0F);
        let af_len = PACKET_SIZE - 5 - payload.len();
        p[4] = af_len as u8;
        if af_len > 0 {
            p[5] = if rai { 0x40 } else { 0 };
        }
        5 + af_len
    };
    p[start..].copy_from_slice(payload);
    p
}

/// A PSI packet: pointer field, then section `table_id` around `body` (which starts at the
/// table_id_extension), with its CRC.
pub fn section_packet(pid: u16, table_id: u8, body: &[u8], cc: u8) -> [u8; PACKET_SIZE] {
    let len = body.len() + 4;
    let mut s = vec![0, table_id, 0xB0 | ((len >> 8) as u8 & 0x0F), len as u8];
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s[1..]);
    s.extend_from_slice(&crc.to_be_bytes());
    packet(pid, true, false, cc, &s)
}

/// A PAT listing one program.
pub fn pat(program: u16, pmt_pid: u16, cc: u8) -> [u8; PACKET_SIZE] {
    let [p0, p1] = program.to_be_bytes();
    let body = [
        0,
        1,
        0xC1,
        0,
        0,
        p0,
        p1,
        0xE0 | (pmt_pid >> 8) as u8,
        pmt_pid as u8,
    ];
    section_packet(0, 0x00, &body, cc)
}

/// A PMT for `program` listing `(stream_type, pid)` streams, with the PCR on the first one.
pub fn pmt(pmt_pid: u16, program: u16, streams: &[(u8, u16)], cc: u8) -> [u8; PACKET_SIZE] {
    let pcr = streams.first().map_or(0x1FFF, |s| s.1);
    let [p0, p1] = program.to_be_bytes();
    let mut body = vec![
        p0,
        p1,
        0xC1,
        0,
        0,
        0xE0 | (pcr >> 8) as u8,
        pcr as u8,
        0xF0,
        0,
    ];
    for &(stream_type, pid) in streams {
        body.extend_from_slice(&[stream_type, 0xE0 | (pid >> 8) as u8, pid as u8, 0xF0, 0]);
    }
    section_packet(pmt_pid, 0x02, &body, cc)
}

/// The 5 bytes of a PTS or DTS field with prefix `tag` (0x2 for a lone PTS, 0x3/0x1 for PTS/DTS).
fn timestamp(tag: u8, ts: u64) -> [u8; 5] {
    let t = ts & PTS_MASK;
    [
        (tag << 4) | ((t >> 29) as u8 & 0x0E) | 1,
        (t >> 22) as u8,
        ((t >> 14) as u8 & 0xFE) | 1,
        (t >> 7) as u8,
        ((t << 1) as u8) | 1,
    ]
}

/// A PES header for `stream_id` (0xE0 video, 0xC0 audio) with a PTS and optionally a DTS.
pub fn pes_header(stream_id: u8, pts: u64, dts: Option<u64>) -> Vec<u8> {
    let mut h = vec![0, 0, 1, stream_id, 0, 0, 0x80];
    match dts {
        None => {
            h.extend_from_slice(&[0x80, 5]);
            h.extend_from_slice(&timestamp(0x2, pts));
        }
        Some(dts) => {
            h.extend_from_slice(&[0xC0, 10]);
            h.extend_from_slice(&timestamp(0x3, pts));
            h.extend_from_slice(&timestamp(0x1, dts));
        }
    }
    h
}

/// Applies `f` to every PTS and DTS of PES headers that start in packets of `ts` (whole packets at
/// 188-byte steps from offset 0; anything else is left alone). Returns how many PES were changed.
pub fn rewrite_pts(ts: &mut [u8], mut f: impl FnMut(u64) -> u64) -> usize {
    let mut changed = 0;
    for p in ts.chunks_exact_mut(PACKET_SIZE) {
        let Some(payload_start) = Packet::parse(p)
            .filter(|pkt| pkt.pusi)
            .map(|pkt| PACKET_SIZE - pkt.payload.len())
        else {
            continue;
        };
        let h = &mut p[payload_start..];
        if h.len() < 14 || h[..3] != [0, 0, 1] || h[6] & 0xC0 != 0x80 {
            continue;
        }
        let flags = h[7] >> 6;
        let fields: &[(usize, u8)] = match flags {
            0b10 => &[(9, 0x2)],
            0b11 if h.len() >= 19 => &[(9, 0x3), (14, 0x1)],
            _ => continue,
        };
        for &(at, tag) in fields {
            let b = &h[at..at + 5];
            let old = (u64::from(b[0] >> 1 & 0x07) << 30)
                | (u64::from(b[1]) << 22)
                | (u64::from(b[2] >> 1) << 15)
                | (u64::from(b[3]) << 7)
                | u64::from(b[4] >> 1);
            h[at..at + 5].copy_from_slice(&timestamp(tag, f(old)));
        }
        changed += 1;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::super::{pes, psi};
    use super::*;

    #[test]
    fn written_tables_and_headers_parse() {
        let p = pat(7, 0x100, 3);
        let parsed = Packet::parse(&p).unwrap();
        assert_eq!(
            psi::parse_pat(parsed.payload),
            Some(psi::Pat {
                program_number: 7,
                pmt_pid: 0x100
            })
        );
        let p = pmt(0x100, 7, &[(0x1B, 0x101), (0x0F, 0x102)], 0);
        let m = psi::parse_pmt(Packet::parse(&p).unwrap().payload).unwrap();
        assert_eq!(m.program_number, 7);
        assert_eq!(m.streams.len(), 2);
        let mut p = packet(0x101, true, true, 0, &pes_header(0xE0, 1234, Some(1000)));
        let pkt = Packet::parse(&p).unwrap();
        assert!(pkt.rai && pkt.pusi);
        assert_eq!(pes::pts(pkt.payload), Some(1234));
        assert_eq!(rewrite_pts(&mut p, |t| (t + PTS_MASK) & PTS_MASK), 1);
        assert_eq!(pes::pts(Packet::parse(&p).unwrap().payload), Some(1233));
    }
}
