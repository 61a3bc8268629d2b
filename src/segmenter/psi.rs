//! PAT and PMT sections that fit in one packet (as mpegtsmux writes them), CRC-checked.

/// Largest PSI section accepted (ISO/IEC 13818-1 caps PAT/PMT `section_length` at 1021, i.e. 1024
/// bytes in all). Sections must also fit in the packet that starts them: multi-packet sections are
/// ignored, because the segmenter re-inserts PSI as single stored packets.
pub const MAX_SECTION_BYTES: usize = 1024;

const TABLE_PAT: u8 = 0x00;
const TABLE_PMT: u8 = 0x02;

/// The program the segmenter follows: the first one in the PAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pat {
    pub program_number: u16,
    pub pmt_pid: u16,
}

/// One elementary stream listed in a PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EsEntry {
    pub pid: u16,
    pub stream_type: u8,
}

impl EsEntry {
    /// H.264, HEVC, MPEG-2 and MPEG-1 video; everything else (AAC, MPEG audio, AC-3, private 0x06)
    /// counts as non-video.
    pub fn is_video(&self) -> bool {
        matches!(self.stream_type, 0x1B | 0x24 | 0x02 | 0x01)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pmt {
    pub program_number: u16,
    pub streams: Vec<EsEntry>,
}

/// Parses a PAT from the payload of a packet with payload_unit_start_indicator set.
pub fn parse_pat(payload: &[u8]) -> Option<Pat> {
    let body = section_body(payload, TABLE_PAT)?;
    body.get(8..)?.chunks_exact(4).find_map(|e| {
        let program_number = u16::from_be_bytes([e[0], e[1]]);
        let pmt_pid = u16::from_be_bytes([e[2], e[3]]) & 0x1FFF;
        // Program 0 points at the network PID; PID 0 and 0x1FFF cannot carry a PMT.
        (program_number != 0 && pmt_pid != 0 && pmt_pid != 0x1FFF).then_some(Pat {
            program_number,
            pmt_pid,
        })
    })
}

/// Parses a PMT from the payload of a packet with payload_unit_start_indicator set.
pub fn parse_pmt(payload: &[u8]) -> Option<Pmt> {
    let body = section_body(payload, TABLE_PMT)?;
    let program_number = u16::from_be_bytes([*body.get(3)?, *body.get(4)?]);
    let info_len = usize::from(u16::from_be_bytes([*body.get(10)?, *body.get(11)?]) & 0x0FFF);
    let mut rest = body.get(12usize.checked_add(info_len)?..)?;
    let mut streams = Vec::new();
    while let Some(entry) = rest.get(..5) {
        let pid = u16::from_be_bytes([entry[1], entry[2]]) & 0x1FFF;
        let es_info_len = usize::from(u16::from_be_bytes([entry[3], entry[4]]) & 0x0FFF);
        streams.push(EsEntry {
            pid,
            stream_type: entry[0],
        });
        rest = rest.get(5 + es_info_len..)?;
    }
    Some(Pmt {
        program_number,
        streams,
    })
}

/// The section of `table_id` starting in `payload`, without its CRC, if it is complete within the
/// payload, current, within `MAX_SECTION_BYTES` and its CRC matches.
fn section_body(payload: &[u8], table_id: u8) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let sec = payload.get(1 + pointer..)?;
    if *sec.first()? != table_id || sec.get(1)? & 0x80 == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*sec.get(1)?, *sec.get(2)?]) & 0x0FFF);
    let total = 3 + len;
    // 5 bytes of extended header and 4 of CRC at least.
    if len < 9 || total > MAX_SECTION_BYTES {
        return None;
    }
    let sec = sec.get(..total)?;
    if crc32_mpeg2(sec) != 0 || sec.get(5)? & 0x01 == 0 {
        return None;
    }
    sec.get(..total - 4)
}

/// CRC-32/MPEG-2; over a whole section including its CRC field it yields 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payload (pointer field + section + CRC) of a real mpegtsmux PMT.
    const MUX_PMT: &str =
        "0002b0210001c10000e041f0001be041f00a050848444d56ff1b443f0fe042f00076d666e7";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_real_mpegtsmux_pat_and_pmt() {
        let pat = hex("0000b00d0001c100000001e020a2c32941");
        assert_eq!(
            parse_pat(&pat),
            Some(Pat {
                program_number: 1,
                pmt_pid: 0x20
            })
        );
        let pmt = parse_pmt(&hex(MUX_PMT)).unwrap();
        assert_eq!(pmt.program_number, 1);
        let kinds: Vec<_> = pmt.streams.iter().map(|s| (s.pid, s.is_video())).collect();
        assert_eq!(kinds, [(0x41, true), (0x42, false)]);
    }

    #[test]
    fn rejects_damaged_or_truncated_sections() {
        let good = hex(MUX_PMT);
        for i in 1..good.len() {
            assert_eq!(parse_pmt(&good[..i]), None, "truncated at {i}");
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert_eq!(parse_pmt(&bad), None, "flipped byte {i}");
        }
        assert_eq!(parse_pat(&good), None);
    }
}
