//! The server's signing key (from `--secret-file`, or made at start) and HMAC-SHA256 tags checked in constant time.

use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Fewest bytes a secret file must hold: a key guessable in fewer than 2^256 tries is refused.
pub const MIN_SECRET_BYTES: usize = 32;
/// Most bytes read from a secret file; longer keys add nothing to HMAC-SHA256.
const MAX_SECRET_BYTES: u64 = 4096;
/// Bytes of an HMAC-SHA256 tag.
pub const TAG_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret file {} holds {len} bytes; it needs at least {MIN_SECRET_BYTES} random bytes \
         (make one with: head -c 32 /dev/urandom > FILE)",
        path.display()
    )]
    TooShort { path: PathBuf, len: usize },
    #[error("the system has no random numbers to make a key with")]
    NoRandom,
}

/// What signs cookies and links. Cloning shares the key.
#[derive(Clone)]
pub struct Secret(hmac::Key);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The key in `path`: its bytes as they are (any file of 32 or more random bytes).
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        use std::io::Read;
        let read = |source| SecretError::Read {
            path: path.to_owned(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_SECRET_BYTES)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                path: path.to_owned(),
                len: bytes.len(),
            });
        }
        Ok(Secret(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// A key nobody else knows, for this process only.
    pub fn random() -> Result<Secret, SecretError> {
        let mut bytes = [0u8; MIN_SECRET_BYTES];
        random_bytes(&mut bytes)?;
        Ok(Secret(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    /// The tag of `parts`, each prefixed by its length so that no two lists of parts sign alike.
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_BYTES] {
        let mut context = hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut message = Vec::new();
        for part in parts {
            message.extend_from_slice(&(part.len() as u64).to_be_bytes());
            message.extend_from_slice(part);
        }
        hmac::verify(&self.0, &message, tag).is_ok()
    }
}

/// Fills `out` from the operating system's random source.
pub fn random_bytes(out: &mut [u8]) -> Result<(), SecretError> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| SecretError::NoRandom)
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower- or upper-case hexadecimal; `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_and_parts_do_not_run_together() {
        let secret = Secret::random().unwrap();
        let tag = secret.tag(&[b"ab", b"c"]);
        assert!(secret.verify(&[b"ab", b"c"], &tag));
        assert!(!secret.verify(&[b"a", b"bc"], &tag));
        assert!(!secret.verify(&[b"ab", b"c"], &tag[..31]));
        let other = Secret::random().unwrap();
        assert!(!other.verify(&[b"ab", b"c"], &tag));
    }

    #[test]
    fn secret_files_need_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, b"too short").unwrap();
        let err = Secret::from_file(&short).unwrap_err();
        assert!(err.to_string().contains("holds 9 bytes"), "{err}");
        let good = dir.path().join("good");
        std::fs::write(&good, [7u8; 32]).unwrap();
        let a = Secret::from_file(&good).unwrap();
        let b = Secret::from_file(&good).unwrap();
        assert!(b.verify(&[b"x"], &a.tag(&[b"x"])));
        assert!(Secret::from_file(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00AB10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é0"), None);
    }
}
