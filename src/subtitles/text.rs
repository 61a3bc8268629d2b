//! Subtitle bytes to text: UTF-8 or UTF-16 by their byte-order mark, UTF-8 when valid, else the legacy encoding chardetng guesses.

/// `bytes` as text, never failing: what cannot be decoded becomes U+FFFD.
pub fn decode(bytes: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return text.into_owned();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    // Old subtitle files are mostly Windows-1252, -1250, -1251 or ISO-8859-x.
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    let (text, _, _) = detector.guess(None, true).decode(bytes);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_utf16_and_legacy_bytes() {
        assert_eq!(decode("héllo".as_bytes()), "héllo");
        assert_eq!(decode(b"\xef\xbb\xbfhi"), "hi");
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain("né".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode(&utf16), "né");
        // "Ça coûte très cher, déjà." in Windows-1252.
        let latin = b"\xc7a co\xfbte tr\xe8s cher, d\xe9j\xe0.";
        assert_eq!(decode(latin), "Ça coûte très cher, déjà.");
    }
}
