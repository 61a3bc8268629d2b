//! A stream's segments in memory, keyed by segment number, under a byte budget.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use super::budget::Budget;

/// What the ring holds of a segment's bytes: its size is all it needs to know.
pub trait Payload: Clone {
    fn size(&self) -> usize;
}

/// One finished segment.
#[derive(Debug, Clone)]
pub struct Stored<B> {
    pub duration: Duration,
    pub body: B,
}

/// A segment's bytes and their content hash, computed once when the segment is made (off the
/// async runtime) so that serving it, with an entity tag, costs no hashing.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub digest: u64,
}

impl Body {
    pub fn new(bytes: Bytes) -> Body {
        use std::hash::{Hash, Hasher};
        // SipHash with fixed keys: the same bytes give the same digest in every run.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes[..].hash(&mut hasher);
        Body {
            digest: hasher.finish(),
            bytes,
        }
    }
}

impl Payload for Body {
    fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// Which segments go first when the budget is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Oldest (lowest-numbered) first: a growing playlist can only drop from its head.
    Oldest,
    /// By distance from the viewers at `positions`: segments behind every viewer first (furthest
    /// behind first), then those far ahead of their nearest viewer; the `read_ahead` segments
    /// from each viewer's position on go last.
    Viewers { read_ahead: u64 },
}

/// Segments, possibly with gaps (runs start anywhere; evicted ones are made again on demand).
/// It evicts when it holds more than its own budget or when all rings together hold more than
/// the server's memory budget.
#[derive(Debug)]
pub struct Ring<B> {
    segments: BTreeMap<u64, Stored<B>>,
    bytes: usize,
    budget: usize,
    shared: Budget,
}

impl<B: Payload> Ring<B> {
    pub fn new(budget: usize, shared: Budget) -> Ring<B> {
        Ring {
            segments: BTreeMap::new(),
            bytes: 0,
            budget,
            shared,
        }
    }

    /// Stores segment `k` (a second copy of a held segment is ignored: both runs cut the same
    /// media time, and viewers may already hold the first), then evicts down to the budget,
    /// never evicting `k` itself.
    pub fn insert(&mut self, k: u64, stored: Stored<B>, eviction: Eviction, positions: &[u64]) {
        if self.segments.contains_key(&k) {
            return;
        }
        self.bytes += stored.body.size();
        self.shared.add_bytes(stored.body.size());
        self.segments.insert(k, stored);
        while self.bytes > self.budget || self.shared.over_memory() {
            let Some(victim) = self.victim(k, eviction, positions) else {
                break;
            };
            if let Some(old) = self.segments.remove(&victim) {
                self.bytes -= old.body.size();
                self.shared.remove_bytes(old.body.size());
            }
        }
    }

    fn victim(&self, keep: u64, eviction: Eviction, positions: &[u64]) -> Option<u64> {
        let candidates = self.segments.keys().copied().filter(|k| *k != keep);
        match eviction {
            Eviction::Viewers { read_ahead } if !positions.is_empty() => {
                candidates.max_by_key(|k| eviction_rank(*k, positions, read_ahead))
            }
            _ => candidates.min(),
        }
    }

    pub fn get(&self, k: u64) -> Option<&Stored<B>> {
        self.segments.get(&k)
    }

    pub fn contains(&self, k: u64) -> bool {
        self.segments.contains_key(&k)
    }

    /// Whether every segment in `range` is held.
    pub fn holds_all(&self, range: std::ops::Range<u64>) -> bool {
        let want = range.end.saturating_sub(range.start);
        want == 0 || self.segments.range(range).count() as u64 == want
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// Segments from `from` on, as long as they are consecutive.
    pub fn run_from(&self, from: u64) -> impl Iterator<Item = (u64, &Stored<B>)> {
        self.segments
            .range(from..)
            .zip(from..)
            .take_while(|((k, _), expected)| **k == *expected)
            .map(|((k, s), _)| (*k, s))
    }

    pub fn first(&self) -> Option<u64> {
        self.segments.keys().next().copied()
    }
}

impl<B> Drop for Ring<B> {
    fn drop(&mut self) {
        self.shared.remove_bytes(self.bytes);
    }
}

/// Larger ranks are evicted first: (class, distance) with class 2 = behind every viewer,
/// 1 = beyond a viewer's read-ahead, 0 = inside a viewer's read-ahead window.
fn eviction_rank(k: u64, positions: &[u64], read_ahead: u64) -> (u8, u64) {
    match positions.iter().copied().filter(|p| *p <= k).max() {
        None => {
            let nearest = positions.iter().copied().min().unwrap_or(k);
            (2, nearest - k)
        }
        Some(p) if k - p <= read_ahead => (0, u64::MAX - (k - p)),
        Some(p) => (1, k - p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(len: usize) -> Stored<Body> {
        Stored {
            duration: Duration::from_secs(2),
            body: Body::new(Bytes::from(vec![0u8; len])),
        }
    }

    #[test]
    fn oldest_first_keeps_a_consecutive_tail() {
        let mut ring = Ring::new(1000, Budget::new(1, usize::MAX));
        for k in 0..5 {
            ring.insert(k, seg(300), Eviction::Oldest, &[]);
        }
        assert_eq!(ring.first(), Some(2));
        assert_eq!(ring.bytes(), 900);
        assert_eq!(
            ring.run_from(2).map(|(k, _)| k).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }

    #[test]
    fn viewers_keep_what_is_just_ahead_of_them() {
        let eviction = Eviction::Viewers { read_ahead: 2 };
        let mut ring = Ring::new(500, Budget::new(1, usize::MAX));
        // A viewer at 10; segments behind it, in its window, and far ahead.
        for k in [5, 10, 11, 12, 30] {
            ring.insert(k, seg(100), eviction, &[10]);
        }
        // One more makes 6 x 100 > 500: the segment behind the viewer goes first.
        ring.insert(13, seg(100), eviction, &[10]);
        assert!(!ring.contains(5));
        // Then the one far ahead, before anything in the window.
        ring.insert(14, seg(100), eviction, &[10]);
        assert!(!ring.contains(30));
        ring.insert(15, seg(100), eviction, &[10]);
        // Only the window is left to take from: the furthest ahead of it goes (13 or 14, not 15).
        assert!(ring.contains(10) && ring.contains(11) && ring.contains(12) && ring.contains(15));
        assert!(!ring.contains(14));
        assert_eq!(ring.bytes(), 500);
    }

    #[test]
    fn the_shared_budget_caps_all_rings() {
        let shared = Budget::new(1, 1000);
        let mut a = Ring::new(10_000, shared.clone());
        let mut b = Ring::new(10_000, shared.clone());
        for k in 0..6 {
            a.insert(k, seg(100), Eviction::Oldest, &[]);
        }
        for k in 0..6 {
            b.insert(k, seg(100), Eviction::Oldest, &[]);
        }
        assert_eq!(shared.bytes(), 1000);
        assert_eq!(a.bytes() + b.bytes(), 1000);
        drop(a);
        assert_eq!(shared.bytes(), b.bytes());
    }

    #[test]
    fn keeps_newest_even_if_too_big_and_ignores_duplicates() {
        let mut ring = Ring::new(100, Budget::new(1, usize::MAX));
        ring.insert(0, seg(50), Eviction::Oldest, &[]);
        ring.insert(1, seg(500), Eviction::Oldest, &[]);
        assert_eq!(ring.first(), Some(1));
        assert_eq!(ring.bytes(), 500);
        ring.insert(1, seg(7), Eviction::Oldest, &[]);
        assert_eq!(ring.bytes(), 500);
        assert_eq!(ring.len(), 1);
    }
}
