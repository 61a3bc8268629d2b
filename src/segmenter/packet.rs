//! One 188-byte TS packet: header fields, the adaptation field's random-access flag, and the payload.

/// Size of one transport stream packet.
pub const PACKET_SIZE: usize = 188;
/// First byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// The null packet PID (stuffing); never carries anything we need.
pub const NULL_PID: u16 = 0x1FFF;

/// The parts of a packet the segmenter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub pid: u16,
    /// payload_unit_start_indicator: a PES or PSI section begins in this payload.
    pub pusi: bool,
    /// transport_error_indicator: the packet is known to be damaged.
    pub tei: bool,
    /// The adaptation field's random_access_indicator (mpegtsmux sets it on keyframe starts).
    pub rai: bool,
    /// Payload bytes after the adaptation field (empty if there are none).
    pub payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses one packet; `None` if it is not 188 bytes, lacks the sync byte, or its adaptation
    /// field length overruns the packet.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() != PACKET_SIZE || bytes.first() != Some(&SYNC_BYTE) {
            return None;
        }
        let b1 = *bytes.get(1)?;
        let b2 = *bytes.get(2)?;
        let b3 = *bytes.get(3)?;
        let pid = (u16::from(b1 & 0x1F) << 8) | u16::from(b2);
        let has_af = b3 & 0x20 != 0;
        let has_payload = b3 & 0x10 != 0;
        let mut rai = false;
        let mut start = 4;
        if has_af {
            let af_len = usize::from(*bytes.get(4)?);
            // An adaptation field may not reach past the packet end.
            if 5 + af_len > PACKET_SIZE {
                return None;
            }
            if af_len > 0 {
                rai = bytes.get(5).is_some_and(|flags| flags & 0x40 != 0);
            }
            start = 5 + af_len;
        }
        let payload = if has_payload {
            bytes.get(start..).unwrap_or_default()
        } else {
            &[]
        };
        Some(Packet {
            pid,
            pusi: b1 & 0x40 != 0,
            tei: b1 & 0x80 != 0,
            rai,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_af_and_payload() {
        let mut p = [0xFFu8; PACKET_SIZE];
        p[..6].copy_from_slice(&[0x47, 0x41, 0x00, 0x37, 0x01, 0x40]);
        let pkt = Packet::parse(&p).unwrap();
        assert_eq!(pkt.pid, 0x100);
        assert!(pkt.pusi && pkt.rai && !pkt.tei);
        assert_eq!(pkt.payload.len(), PACKET_SIZE - 6);
    }

    #[test]
    fn rejects_bad_packets() {
        let mut p = [0u8; PACKET_SIZE];
        assert!(Packet::parse(&p).is_none());
        p[0] = 0x47;
        p[3] = 0x30;
        p[4] = 183;
        assert_eq!(Packet::parse(&p).unwrap().payload, &[] as &[u8]);
        p[4] = 184;
        assert!(Packet::parse(&p).is_none());
        assert!(Packet::parse(&p[..100]).is_none());
    }
}
