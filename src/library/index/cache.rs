//! Indexes (and any other per-file result) held in memory per file version (path, length, modification time), bounded in size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;

use super::{Index, IndexError, Limits};

/// Keyframe entries held by a default cache: 4 million (32 MB) is over a thousand 2-hour films.
pub const DEFAULT_CACHE_KEYFRAMES: usize = 4 << 20;
/// What an entry costs besides its keyframes (failures and audio-only files cost this alone), so
/// that a flood of distinct small or broken files is bounded too.
const ENTRY_COST: usize = 64;

/// One version of a file: a change of length or modification time is a new version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileVersion {
    pub path: PathBuf,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

impl FileVersion {
    /// The version of the file at `path` now.
    pub fn of(path: &Path) -> std::io::Result<FileVersion> {
        let meta = std::fs::metadata(path)?;
        Ok(FileVersion {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// What a cached value costs to hold, in keyframe entries (the unit of a cache's capacity).
pub trait Weigh {
    fn keyframes(&self) -> usize;
}

impl Weigh for Index {
    fn keyframes(&self) -> usize {
        self.video.as_ref().map_or(0, |v| v.keyframes.len())
    }
}

/// The outcome of working out something about one file version, shared by every stream of it.
pub type Outcome<T, E> = Result<Arc<T>, Arc<E>>;

/// The outcome of indexing one file version.
pub type Cached = Outcome<Index, IndexError>;

/// Outcomes by file version, least recently used evicted first once the held keyframes (plus a
/// fixed cost per entry) pass the capacity. Failures are kept too: a file that could not be
/// indexed is not tried again until it changes (unless the caller says the failure may pass).
pub struct VersionCache<T, E> {
    capacity: usize,
    state: Mutex<State<T, E>>,
}

struct State<T, E> {
    entries: HashMap<FileVersion, (Outcome<T, E>, u64)>,
    /// Sum of the entries' costs.
    held: usize,
    /// Use counter: an entry's stamp is when it was last used.
    clock: u64,
}

fn cost<T: Weigh, E>(c: &Outcome<T, E>) -> usize {
    ENTRY_COST + c.as_ref().map_or(0, |value| value.keyframes())
}

impl<T: Weigh, E> VersionCache<T, E> {
    /// A cache holding about `capacity` keyframe entries.
    pub fn new(capacity: usize) -> VersionCache<T, E> {
        VersionCache {
            capacity,
            state: Mutex::new(State {
                entries: HashMap::new(),
                held: 0,
                clock: 0,
            }),
        }
    }

    /// The outcome for the file at `path` as it is now, from the cache or from `make` (called
    /// outside the lock: two first viewers of one file may both make it; the second result
    /// replaces the first). A failure for which `keep` says false is returned, not kept.
    pub fn get_with(
        &self,
        path: &Path,
        make: impl FnOnce(&Path) -> Result<T, E>,
        keep: impl FnOnce(&E) -> bool,
    ) -> Outcome<T, E>
    where
        E: From<std::io::Error>,
    {
        let version = FileVersion::of(path).map_err(|e| Arc::new(E::from(e)))?;
        if let Some(cached) = self.lookup(&version) {
            return cached;
        }
        let outcome: Outcome<T, E> = make(path).map(Arc::new).map_err(Arc::new);
        if outcome.as_ref().err().is_none_or(|e| keep(e)) {
            self.insert(version, outcome.clone());
        }
        outcome
    }

    /// The outcome held for `version`, if any (and it counts as used).
    pub fn lookup(&self, version: &FileVersion) -> Option<Outcome<T, E>> {
        let mut st = self.state.lock();
        st.clock += 1;
        let now = st.clock;
        let (cached, used) = st.entries.get_mut(version)?;
        *used = now;
        Some(cached.clone())
    }

    /// Holds `outcome` for `version`, dropping other versions of its path and, past the capacity,
    /// the least recently used entries.
    pub fn insert(&self, version: FileVersion, outcome: Outcome<T, E>) {
        let mut st = self.state.lock();
        st.clock += 1;
        let now = st.clock;
        let add = cost(&outcome);
        // Older versions of the same path will not be asked for again.
        let stale: Vec<FileVersion> = st
            .entries
            .keys()
            .filter(|v| v.path == version.path && **v != version)
            .cloned()
            .collect();
        for v in stale {
            if let Some((c, _)) = st.entries.remove(&v) {
                st.held -= cost(&c);
            }
        }
        if let Some((old, _)) = st.entries.insert(version, (outcome, now)) {
            st.held -= cost(&old);
        }
        st.held += add;
        while st.held > self.capacity && st.entries.len() > 1 {
            let Some(oldest) = st
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(v, _)| v.clone())
            else {
                break;
            };
            if let Some((c, _)) = st.entries.remove(&oldest) {
                st.held -= cost(&c);
            }
        }
    }

    /// Number of file versions held.
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Container indexes (MP4, Matroska) per file version.
pub struct IndexCache {
    cache: VersionCache<Index, IndexError>,
    limits: Limits,
}

impl IndexCache {
    /// A cache holding about `capacity` keyframe entries, indexing with `limits`.
    pub fn new(capacity: usize, limits: Limits) -> IndexCache {
        IndexCache {
            cache: VersionCache::new(capacity),
            limits,
        }
    }

    /// The index of the file at `path` as it is now, from the cache or made now.
    pub fn get(&self, path: &Path) -> Cached {
        let make = |path: &Path| {
            std::fs::File::open(path)
                .map_err(IndexError::from)
                .and_then(|f| super::index_reader(f, &self.limits))
        };
        self.cache.get_with(path, make, |_| true)
    }

    /// Number of file versions held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

impl Default for IndexCache {
    fn default() -> Self {
        IndexCache::new(DEFAULT_CACHE_KEYFRAMES, Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(name: &str) -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/index");
        std::fs::read(dir.join(name)).unwrap()
    }

    #[test]
    fn caches_by_version_and_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..3)
            .map(|i| {
                let p = dir.path().join(format!("{i}.mp4"));
                std::fs::write(&p, seed("seed.mp4")).unwrap();
                p
            })
            .collect();
        // Room for two entries of three keyframes each.
        let cache = IndexCache::new(2 * (ENTRY_COST + 3), Limits::default());
        let a = cache.get(&files[0]).unwrap();
        assert!(Arc::ptr_eq(&a, &cache.get(&files[0]).unwrap()));
        cache.get(&files[1]).unwrap();
        cache.get(&files[0]).unwrap();
        cache.get(&files[2]).unwrap();
        assert_eq!(cache.len(), 2);
        // 1 was the least recently used: 0 is still the same Arc.
        assert!(Arc::ptr_eq(&a, &cache.get(&files[0]).unwrap()));

        // A new version (other length) of a file replaces its old entry.
        std::fs::write(&files[0], seed("seed.mkv")).unwrap();
        let b = cache.get(&files[0]).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 2);

        // Failures are kept as well.
        let junk = dir.path().join("junk.mp4");
        std::fs::write(&junk, b"not a container at all").unwrap();
        let e = cache.get(&junk).unwrap_err();
        assert!(Arc::ptr_eq(&e, &cache.get(&junk).unwrap_err()));
        assert!(cache.get(&dir.path().join("missing")).is_err());
    }

    impl Weigh for Vec<i64> {
        fn keyframes(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn failures_the_caller_does_not_keep_are_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.ts");
        std::fs::write(&file, b"x").unwrap();
        let cache: VersionCache<Vec<i64>, std::io::Error> = VersionCache::new(1000);
        let calls = std::cell::Cell::new(0);
        let failing = |_: &Path| {
            calls.set(calls.get() + 1);
            Err(std::io::Error::other("busy"))
        };
        assert!(cache.get_with(&file, failing, |_| false).is_err());
        assert!(cache.get_with(&file, failing, |_| false).is_err());
        assert_eq!((calls.get(), cache.len()), (2, 0));
        assert!(cache.get_with(&file, failing, |_| true).is_err());
        assert!(cache.get_with(&file, failing, |_| true).is_err());
        assert_eq!((calls.get(), cache.len()), (3, 1));
        // A new version is worked out afresh, and replaces the old one.
        std::fs::write(&file, b"xy").unwrap();
        let ok = cache.get_with(&file, |_| Ok(vec![1, 2]), |_| true).unwrap();
        assert_eq!((*ok).clone(), vec![1, 2]);
        assert_eq!(cache.len(), 1);
    }
}
