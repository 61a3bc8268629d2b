//! Session cookies: a user name and an expiry, signed with the server's key and the user's password hash.
//!
//! The value is `<expiry>-<HMAC-SHA256 in hex>-<name>`. The password hash is inside the tag, not
//! the value: changing a password or removing the user ends every session at once.

use super::keys::{Secret, TAG_BYTES, hex, unhex};

/// The cookie's name.
pub const NAME: &str = "hlss_session";
/// How long a login lasts.
pub const LIFETIME_SECS: u64 = 14 * 24 * 3600;
/// Domain separation: a cookie tag can never be a link tag.
const PURPOSE: &[u8] = b"hlss session v1";

/// The cookie value for `user` (whose users-file hash is `hash`) valid until `expires`.
pub fn issue(secret: &Secret, user: &str, hash: &str, expires: u64) -> String {
    let expiry = expires.to_string();
    let tag = secret.tag(&[PURPOSE, user.as_bytes(), hash.as_bytes(), expiry.as_bytes()]);
    format!("{expiry}-{}-{user}", hex(&tag))
}

/// The user `value` logs in at Unix time `now`, if it is genuine, unexpired, and made while the
/// user had the hash `hash_of` gives now.
pub fn check(
    secret: &Secret,
    value: &str,
    now: u64,
    hash_of: impl FnOnce(&str) -> Option<String>,
) -> Option<String> {
    let mut parts = value.splitn(3, '-');
    let (expiry, tag, user) = (parts.next()?, parts.next()?, parts.next()?);
    let expires: u64 = expiry
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| expiry.parse().ok())??;
    let tag = unhex(tag).filter(|t| t.len() == TAG_BYTES)?;
    let hash = hash_of(user)?;
    let genuine = secret.verify(
        &[PURPOSE, user.as_bytes(), hash.as_bytes(), expiry.as_bytes()],
        &tag,
    );
    (genuine && now < expires).then(|| user.to_owned())
}

/// The `name=value` of `Cookie` request headers' hlss cookie, if any.
pub fn from_header<'a>(headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == NAME)
        .map(|(_, value)| value.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_lasts_while_the_password_does() {
        let secret = Secret::random().unwrap();
        let value = issue(&secret, "ann-marie", "$argon2id$h1", 500);
        let hash = |h: &'static str| move |_: &str| Some(h.to_owned());
        assert_eq!(
            check(&secret, &value, 499, hash("$argon2id$h1")).as_deref(),
            Some("ann-marie")
        );
        assert_eq!(check(&secret, &value, 500, hash("$argon2id$h1")), None);
        // A new password (or the user removed) ends the session.
        assert_eq!(check(&secret, &value, 1, hash("$argon2id$h2")), None);
        assert_eq!(check(&secret, &value, 1, |_| None), None);
        // Another name with the same tag is not that user.
        let renamed = value.replace("ann-marie", "admin");
        assert_eq!(check(&secret, &renamed, 1, hash("$argon2id$h1")), None);
        for junk in ["", "1-2", "x-00-a", "500--ann"] {
            assert_eq!(
                check(&secret, junk, 1, hash("$argon2id$h1")),
                None,
                "{junk}"
            );
        }
    }

    #[test]
    fn finds_our_cookie_among_others() {
        let headers = ["a=1; hlss_sessionx=2", "b=3;hlss_session=\"9-ab-x\" ; c=4"];
        assert_eq!(from_header(headers.into_iter()), Some("9-ab-x"));
        assert_eq!(from_header(["a=1"].into_iter()), None);
    }
}
