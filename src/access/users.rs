//! The users file (`name:argon2id-hash` lines), read again when it changes, and password checks that cost the same for unknown names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use parking_lot::{Mutex, RwLock};

use super::keys::{Secret, SecretError, TAG_BYTES, random_bytes};

/// Largest users file read: a line is about 120 bytes, so this is thousands of users.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Longest user name.
pub const MAX_NAME_CHARS: usize = 64;
/// How long a password that checked out is remembered, so that a player sending HTTP Basic with
/// every segment request does not cost an argon2 hash each time.
const REMEMBER: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the users file {} is larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}, line {line}: {reason}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "a user name is 1 to {MAX_NAME_CHARS} printable ASCII characters without spaces or any of : , ; \" \\"
    )]
    BadName,
    #[error("the password is empty")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Random(#[from] SecretError),
}

/// Whether `name` can be a user name: it must fit in a cookie and in a `name:hash` line.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b":,;\"\\".contains(&b))
}

/// The line to add to a users file for `name` with `password` (argon2id with the crate's default
/// cost, which is OWASP's recommendation: 19 MiB, 2 passes).
pub fn line_for(name: &str, password: &str) -> Result<String, UsersError> {
    if !valid_name(name) {
        return Err(UsersError::BadName);
    }
    if password.is_empty() {
        return Err(UsersError::EmptyPassword);
    }
    Ok(format!("{name}:{}", hash(&Argon2::default(), password)?))
}

fn hash(argon: &Argon2<'_>, password: &str) -> Result<String, UsersError> {
    let mut salt = [0u8; 16];
    random_bytes(&mut salt)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| UsersError::Hash(e.to_string()))?;
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Hash(e.to_string()))
}

/// The users of one reading of the file.
#[derive(Debug, Default)]
struct Table {
    hashes: HashMap<String, String>,
}

impl Table {
    fn parse(path: &Path, text: &str) -> Result<Table, UsersError> {
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |reason: &str| UsersError::Line {
                path: path.to_owned(),
                line: i + 1,
                reason: reason.to_owned(),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, phc) = line
                .split_once(':')
                .ok_or_else(|| bad("expected name:hash (make a line with `hlss user add NAME`)"))?;
            if !valid_name(name) {
                return Err(bad(&UsersError::BadName.to_string()));
            }
            let parsed =
                PasswordHash::new(phc).map_err(|e| bad(&format!("not a PHC hash: {e}")))?;
            if parsed.algorithm != Algorithm::Argon2id.ident() {
                return Err(bad("only argon2id hashes are accepted"));
            }
            Params::try_from(&parsed).map_err(|e| bad(&format!("bad argon2 parameters: {e}")))?;
            if hashes.insert(name.to_owned(), phc.to_owned()).is_some() {
                return Err(bad(&format!("{name} is listed twice")));
            }
        }
        Ok(Table { hashes })
    }
}

/// One reading of the file, with the stand-in hash unknown names are checked against.
#[derive(Debug)]
struct Loaded {
    raw: Vec<u8>,
    table: Table,
    /// A hash of a random password made with the first user's cost: checking a password for a
    /// name nobody has takes as long as for a real user.
    stand_in: String,
}

/// A password that checked out recently.
struct Remembered {
    hash: String,
    tag: [u8; TAG_BYTES],
    at: Instant,
}

/// The accounts of `--users FILE`.
pub struct Accounts {
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    remembered: Mutex<HashMap<String, Remembered>>,
    /// The last contents refused, so a broken file is reported once, not at every reading.
    refused: Mutex<Option<Vec<u8>>>,
    /// Tags remembered passwords without keeping them.
    memory_key: Secret,
    /// argon2 checks made: lets tests see that unknown names cost a check too.
    checks: AtomicU64,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("path", &self.path)
            .finish()
    }
}

impl Accounts {
    /// Reads `path`; a missing or broken file is an error at start.
    pub fn load(path: &Path) -> Result<Accounts, UsersError> {
        let raw = read(path)?;
        let loaded = Loaded::from_raw(path, raw)?;
        Ok(Accounts {
            path: path.to_owned(),
            loaded: RwLock::new(Arc::new(loaded)),
            remembered: Mutex::new(HashMap::new()),
            refused: Mutex::new(None),
            memory_key: Secret::random()?,
            checks: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again; takes the new users only if the file changed and parses whole.
    /// `Ok(true)` when the users changed. Blocking (file I/O and, when it changed, one hash).
    pub fn reload(&self) -> Result<bool, UsersError> {
        let raw = read(&self.path)?;
        if raw == self.loaded.read().raw || self.refused.lock().as_ref() == Some(&raw) {
            return Ok(false);
        }
        let loaded = match Loaded::from_raw(&self.path, raw.clone()) {
            Ok(loaded) => loaded,
            Err(err) => {
                *self.refused.lock() = Some(raw);
                return Err(err);
            }
        };
        *self.loaded.write() = Arc::new(loaded);
        self.remembered.lock().clear();
        Ok(true)
    }

    /// How many users the file lists.
    pub fn count(&self) -> usize {
        self.loaded.read().table.hashes.len()
    }

    /// The current hash of `user`, if the file lists them.
    pub fn hash_of(&self, user: &str) -> Option<String> {
        self.loaded.read().table.hashes.get(user).cloned()
    }

    /// argon2 checks made so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The user's hash if `password` is theirs. Blocking: one argon2 check (tens of
    /// milliseconds) unless the same password checked out in the last ten minutes; a name the
    /// file does not list costs the same check, against the stand-in.
    pub fn verify(&self, user: &str, password: &str) -> Option<String> {
        let loaded = self.loaded.read().clone();
        let known = loaded.table.hashes.get(user);
        if let Some(hash) = known
            && let Some(seen) = self.remembered.lock().get(user)
            && seen.hash == *hash
            && seen.at.elapsed() < REMEMBER
            && self
                .memory_key
                .verify(&[user.as_bytes(), password.as_bytes()], &seen.tag)
        {
            return Some(hash.clone());
        }
        let phc = known.unwrap_or(&loaded.stand_in);
        self.checks.fetch_add(1, Ordering::Relaxed);
        let genuine = PasswordHash::new(phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        let hash = known.filter(|_| genuine)?;
        self.remembered.lock().insert(
            user.to_owned(),
            Remembered {
                hash: hash.clone(),
                tag: self.memory_key.tag(&[user.as_bytes(), password.as_bytes()]),
                at: Instant::now(),
            },
        );
        Some(hash.clone())
    }
}

impl Loaded {
    fn from_raw(path: &Path, raw: Vec<u8>) -> Result<Loaded, UsersError> {
        let text = String::from_utf8_lossy(&raw);
        let table = Table::parse(path, &text)?;
        // The stand-in costs what a real user's hash costs.
        let params = table
            .hashes
            .values()
            .next()
            .and_then(|phc| PasswordHash::new(phc).ok())
            .and_then(|parsed| Params::try_from(&parsed).ok())
            .unwrap_or_default();
        let mut password = [0u8; 16];
        random_bytes(&mut password)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let stand_in = hash(&argon, &super::keys::hex(&password))?;
        Ok(Loaded {
            raw,
            table,
            stand_in,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, UsersError> {
    use std::io::Read;
    let fail = |source| UsersError::Read {
        path: path.to_owned(),
        source,
    };
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .map_err(fail)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(fail)?;
    if raw.len() as u64 > MAX_FILE_BYTES {
        return Err(UsersError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("users");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn names_fit_cookies_and_lines() {
        for good in ["alice", "bob.smith@example.org", "x-1_2+3"] {
            assert!(valid_name(good), "{good}");
        }
        let long = "a".repeat(65);
        for bad in ["", "a b", "a:b", "a;b", "a,b", "é", "a\"b", long.as_str()] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(matches!(line_for("a b", "pw"), Err(UsersError::BadName)));
        assert!(matches!(line_for("a", ""), Err(UsersError::EmptyPassword)));
    }

    #[test]
    fn passwords_check_out_and_unknown_names_cost_a_check_too() {
        let dir = tempfile::tempdir().unwrap();
        let line = line_for("alice", "correct horse").unwrap();
        assert!(
            line.starts_with("alice:$argon2id$v=19$m=19456,t=2,p=1$"),
            "{line}"
        );
        let path = file(dir.path(), &format!("# who may watch\n\n{line}\n"));
        let accounts = Accounts::load(&path).unwrap();
        assert_eq!(accounts.count(), 1);
        let before = accounts.checks();
        assert!(accounts.verify("alice", "wrong").is_none());
        assert!(accounts.verify("mallory", "correct horse").is_none());
        assert_eq!(
            accounts.checks() - before,
            2,
            "an unknown name costs one check"
        );
        assert!(accounts.verify("alice", "correct horse").is_some());
        // Remembered: the same password again costs no check; a wrong one still does.
        let before = accounts.checks();
        assert!(accounts.verify("alice", "correct horse").is_some());
        assert_eq!(accounts.checks(), before);
        assert!(accounts.verify("alice", "correct horsf").is_none());
        assert_eq!(accounts.checks(), before + 1);
    }

    #[test]
    fn a_changed_file_takes_effect_and_a_broken_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let alice = line_for("alice", "a").unwrap();
        let path = file(dir.path(), &alice);
        let accounts = Accounts::load(&path).unwrap();
        assert!(!accounts.reload().unwrap());
        let bob = line_for("bob", "b").unwrap();
        std::fs::write(&path, format!("{bob}\n")).unwrap();
        assert!(accounts.reload().unwrap());
        assert!(accounts.hash_of("alice").is_none());
        assert!(accounts.verify("bob", "b").is_some());
        for (broken, says) in [
            ("bob\n", "line 1: expected name:hash"),
            (
                "a b:$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n",
                "line 1: a user name",
            ),
            (
                &format!("{bob}\n{bob}\n") as &str,
                "line 2: bob is listed twice",
            ),
            (
                "carol:$2b$12$abcdefghijklmnopqrstuu\n",
                "line 1: not a PHC hash",
            ),
            (
                "carol:$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA\n",
                "only argon2id",
            ),
        ] {
            std::fs::write(&path, broken).unwrap();
            let err = accounts.reload().unwrap_err().to_string();
            assert!(err.contains(says), "{broken:?}: {err}");
            // Said once: the same broken contents are not reported again.
            assert!(!accounts.reload().unwrap());
            // The last good reading stays.
            assert!(accounts.hash_of("bob").is_some());
        }
        assert!(Accounts::load(&dir.path().join("none")).is_err());
    }
}
