//! Signed links: a token naming one file and an expiry, for players that cannot log in.
//!
//! A token is `<expiry in Unix seconds>-<HMAC-SHA256 in hex>` over the file's library path and
//! the expiry; it rides in the `t` query parameter of the file's playlist and of every URI in it.

use super::keys::{Secret, TAG_BYTES, hex, unhex};

/// Longest a link may live: a year.
pub const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;
/// Domain separation: a link tag can never be a cookie tag.
const PURPOSE: &[u8] = b"hlss link v1";

/// Why a token was refused (all answered alike: 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this link is not a link hlss made")]
    Malformed,
    #[error("this link is not valid for this file")]
    Forged,
    #[error("this link has expired")]
    Expired,
}

/// The token for `file` (its library path, as `RelPath` displays it) valid until `expires`.
pub fn sign(secret: &Secret, file: &str, expires: u64) -> String {
    let expiry = expires.to_string();
    let tag = secret.tag(&[PURPOSE, file.as_bytes(), expiry.as_bytes()]);
    format!("{expiry}-{}", hex(&tag))
}

/// Whether `token` lets its holder play `file` at Unix time `now`. The tag is checked before the
/// expiry, so an altered expiry reads as forged.
pub fn check(secret: &Secret, file: &str, token: &str, now: u64) -> Result<(), LinkError> {
    let (expiry, tag) = token.split_once('-').ok_or(LinkError::Malformed)?;
    let expires: u64 = expiry
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| expiry.parse().ok())
        .flatten()
        .ok_or(LinkError::Malformed)?;
    let tag = unhex(tag)
        .filter(|t| t.len() == TAG_BYTES)
        .ok_or(LinkError::Malformed)?;
    if !secret.verify(&[PURPOSE, file.as_bytes(), expiry.as_bytes()], &tag) {
        return Err(LinkError::Forged);
    }
    if now >= expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_opens_its_file_until_it_expires() {
        let secret = Secret::random().unwrap();
        let token = sign(&secret, "films/a b.mkv", 1_000);
        assert_eq!(check(&secret, "films/a b.mkv", &token, 999), Ok(()));
        assert_eq!(
            check(&secret, "films/a b.mkv", &token, 1_000),
            Err(LinkError::Expired)
        );
        assert_eq!(
            check(&secret, "films/other.mkv", &token, 10),
            Err(LinkError::Forged)
        );
        let other_key = Secret::random().unwrap();
        assert_eq!(
            check(&other_key, "films/a b.mkv", &token, 10),
            Err(LinkError::Forged)
        );
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let secret = Secret::random().unwrap();
        let token = sign(&secret, "a.mp4", 1_000);
        let (expiry, tag) = token.split_once('-').unwrap();
        let later = format!("9{expiry}-{tag}");
        assert_eq!(check(&secret, "a.mp4", &later, 10), Err(LinkError::Forged));
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            check(&secret, "a.mp4", &flipped, 10),
            Err(LinkError::Forged)
        );
        for junk in [
            "",
            "-",
            "1000",
            "x-00",
            "1000-abc",
            "+1000-00",
            &token[..token.len() - 2],
        ] {
            assert_eq!(
                check(&secret, "a.mp4", junk, 10),
                Err(LinkError::Malformed),
                "{junk}"
            );
        }
    }
}
