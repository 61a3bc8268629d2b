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
    payload.get(9..14).map(timestamp)
}

/// The DTS of the PES header at the start of `payload`, if it has one (it then also has a PTS,
/// which [`pts`] reads).
pub fn dts(payload: &[u8]) -> Option<u64> {
    pts(payload)?;
    if payload.get(7)? & 0xC0 != 0xC0 || *payload.get(8)? < 10 {
        return None;
    }
    payload.get(14..19).map(timestamp)
}

/// A 33-bit timestamp spread over five bytes with marker bits (which are not checked).
fn timestamp(b: &[u8]) -> u64 {
    let byte = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    ((byte(0) >> 1 & 0x07) << 30
        | byte(1) << 22
        | (byte(2) >> 1) << 15
        | byte(3) << 7
        | byte(4) >> 1)
        & PTS_MASK
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
    fn reads_a_dts_only_where_there_is_one() {
        let mut h = [0u8; 19];
        h[..14].copy_from_slice(&header_with_pts(0xE0, 9000));
        assert_eq!(dts(&h), None);
        h[7] = 0xC0;
        h[8] = 10;
        h[14..].copy_from_slice(&header_with_pts(0xE0, 5400)[9..]);
        assert_eq!((pts(&h), dts(&h)), (Some(9000), Some(5400)));
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
