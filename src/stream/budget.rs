//! What all streams share: how many pipelines of each kind may run at once and how much segment memory they may hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Direct runs (no decoding, no encoding: the source's own H.264 remuxed) that may run at once
/// over all streams. They cost a demuxer's reads and little CPU, so they are not counted under
/// `--max-transcodes`; this bounds their threads and buffers.
pub const MAX_DIRECT_RUNS: usize = 256;

/// What a pipeline costs, and so which places it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Decodes and encodes: one of `--max-transcodes`.
    Transcode,
    /// Passes the source's own stream through: one of [`MAX_DIRECT_RUNS`].
    Direct,
}

/// The server-wide limits. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Places {
    max: usize,
    taken: AtomicUsize,
}

#[derive(Debug)]
struct Inner {
    transcodes: Places,
    direct: Places,
    memory: usize,
    bytes: AtomicUsize,
}

impl Inner {
    fn places(&self, cost: Cost) -> &Places {
        match cost {
            Cost::Transcode => &self.transcodes,
            Cost::Direct => &self.direct,
        }
    }
}

/// One running pipeline's place; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    cost: Cost,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner
            .places(self.cost)
            .taken
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl Budget {
    pub fn new(max_transcodes: usize, memory: usize) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                transcodes: Places {
                    max: max_transcodes,
                    taken: AtomicUsize::new(0),
                },
                direct: Places {
                    max: MAX_DIRECT_RUNS,
                    taken: AtomicUsize::new(0),
                },
                memory,
                bytes: AtomicUsize::new(0),
            }),
        }
    }

    /// A place for one more pipeline of this cost, if there is one.
    pub fn try_place(&self, cost: Cost) -> Option<Permit> {
        let places = self.inner.places(cost);
        let taken = places
            .taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < places.max).then_some(n + 1)
            });
        taken.ok().map(|_| Permit {
            inner: self.inner.clone(),
            cost,
        })
    }

    /// Transcodes holding a place now.
    pub fn transcodes(&self) -> usize {
        self.inner.transcodes.taken.load(Ordering::Acquire)
    }

    pub fn max_transcodes(&self) -> usize {
        self.inner.transcodes.max
    }

    /// Direct runs holding a place now.
    pub fn direct_runs(&self) -> usize {
        self.inner.direct.taken.load(Ordering::Acquire)
    }

    /// Records segment bytes a ring took.
    pub fn add_bytes(&self, added: usize) {
        self.inner.bytes.fetch_add(added, Ordering::AcqRel);
    }

    /// Records segment bytes a ring let go.
    pub fn remove_bytes(&self, freed: usize) {
        self.inner.bytes.fetch_sub(freed, Ordering::AcqRel);
    }

    /// True while all rings together hold more than `--memory-budget`.
    pub fn over_memory(&self) -> bool {
        self.inner.bytes.load(Ordering::Acquire) > self.inner.memory
    }

    pub fn bytes(&self) -> usize {
        self.inner.bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_and_returned() {
        let budget = Budget::new(2, 100);
        let a = budget.try_place(Cost::Transcode).expect("first");
        let _b = budget.try_place(Cost::Transcode).expect("second");
        assert!(budget.try_place(Cost::Transcode).is_none());
        drop(a);
        assert_eq!(budget.transcodes(), 1);
        assert!(budget.try_place(Cost::Transcode).is_some());
    }

    #[test]
    fn direct_runs_take_no_transcode_place() {
        let budget = Budget::new(1, 100);
        let _t = budget
            .try_place(Cost::Transcode)
            .expect("the transcode place");
        let direct: Vec<Permit> = (0..10)
            .map(|_| budget.try_place(Cost::Direct).expect("a direct place"))
            .collect();
        assert_eq!(budget.direct_runs(), 10);
        assert_eq!(budget.transcodes(), 1);
        drop(direct);
        assert_eq!(budget.direct_runs(), 0);
    }

    #[test]
    fn memory_is_shared() {
        let budget = Budget::new(1, 100);
        budget.add_bytes(80);
        budget.clone().add_bytes(30);
        assert!(budget.over_memory());
        budget.remove_bytes(30);
        assert!(!budget.over_memory());
        assert_eq!(budget.bytes(), 80);
    }
}
