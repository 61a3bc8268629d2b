//! PES header parsing: just enough to read the presentation timestamp of a PES that starts in a packet.

/// PTS values are 33-bit counters.
pub const PTS_MASK: u64 = (1 << 33) - 1;

/// The PTS of the PES header at the start of `payload`, if it has one.
///
/// Marker bits inside the PTS are not checked: muxers get them wrong more often than the value.
pub fn pts(payload: &[u8]) -> Option<u64> {
    if payload.get(..3)? != [0, 0, 1] {
        return None;
    }
    let stream_id = *payload.get(3)?;
    // These stream ids have no optional header and hence no PTS.
    if matches!(
        stream_id,
        0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF
    ) {
        return None;
    }
    // '10' marks the MPEG-2 optional header.
    if payload.get(6)? & 0xC0 != 0x80 {
        return None;
    }
    if payload.get(7)? & 0x80 == 0 || *payload.get(8)? < 5 {
        return None;
    }
    let b = payload.get(9..14)?;
    let pts = (u64::from(b[0] >> 1 & 0x07) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1);
    Some(pts & PTS_MASK)
}

/// Writes a PES header with a PTS (test helper shared with the segmenter tests).
#[cfg(test)]
pub fn header_with_pts(stream_id: u8, pts: u64) -> [u8; 14] {
    let p = pts & PTS_MASK;
    [
        0,
        0,
        1,
        stream_id,
        0,
        0,
        0x80,
        0x80,
        5,
        0x21 | ((p >> 29) as u8 & 0x0E),
        (p >> 22) as u8,
        ((p >> 14) as u8 & 0xFE) | 1,
        (p >> 7) as u8,
        ((p << 1) as u8) | 1,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_pts() {
        for v in [0, 1, 324_000_000, PTS_MASK, 0x1_2345_6789] {
            assert_eq!(pts(&header_with_pts(0xE0, v)), Some(v));
        }
    }

    #[test]
    fn rejects_headers_without_pts() {
        let mut h = header_with_pts(0xE0, 5);
        h[7] = 0;
        assert_eq!(pts(&h), None);
        assert_eq!(pts(&header_with_pts(0xBE, 5)), None);
        assert_eq!(pts(&header_with_pts(0xE0, 5)[..13]), None);
        assert_eq!(pts(&[0, 0, 2, 0xE0]), None);
        assert_eq!(pts(&[]), None);
    }
}
