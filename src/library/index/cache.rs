//! Indexes held in memory per file version (path, length, modification time), bounded in size.

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

/// The outcome of indexing one file version, shared by every stream of that version.
pub type Cached = Result<Arc<Index>, Arc<IndexError>>;

/// Indexes by file version, least recently used evicted first once the held keyframes (plus a
/// fixed cost per entry) pass the capacity. Failures are kept too: a file that could not be indexed
/// within the budget is not tried again until it changes.
pub struct IndexCache {
    capacity: usize,
    limits: Limits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<FileVersion, (Cached, u64)>,
    /// Sum of the entries' costs.
    held: usize,
    /// Use counter: an entry's stamp is when it was last used.
    clock: u64,
}

fn cost(c: &Cached) -> usize {
    ENTRY_COST
        + c.as_ref()
            .map_or(0, |ix| ix.video.as_ref().map_or(0, |v| v.keyframes.len()))
}

impl IndexCache {
    /// A cache holding about `capacity` keyframe entries, indexing with `limits`.
    pub fn new(capacity: usize, limits: Limits) -> IndexCache {
        IndexCache {
            capacity,
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// The index of the file at `path` as it is now, from the cache or made now (outside the lock:
    /// two first viewers of one file may both index it; the second result replaces the first).
    pub fn get(&self, path: &Path) -> Cached {
        let version = FileVersion::of(path).map_err(|e| Arc::new(IndexError::Io(e)))?;
        {
            let mut st = self.state.lock();
            st.clock += 1;
            let now = st.clock;
            if let Some((cached, used)) = st.entries.get_mut(&version) {
                *used = now;
                return cached.clone();
            }
        }
        let cached: Cached = std::fs::File::open(path)
            .map_err(IndexError::from)
            .and_then(|f| super::index_reader(f, &self.limits))
            .map(Arc::new)
            .map_err(Arc::new);
        self.insert(version, cached.clone());
        cached
    }

    fn insert(&self, version: FileVersion, cached: Cached) {
        let mut st = self.state.lock();
        st.clock += 1;
        let now = st.clock;
        let add = cost(&cached);
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
        if let Some((old, _)) = st.entries.insert(version, (cached, now)) {
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
}
