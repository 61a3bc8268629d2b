//! What all streams share: how many pipelines may run at once and how much segment memory they may hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The server-wide limits. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_transcodes: usize,
    transcodes: AtomicUsize,
    memory: usize,
    bytes: AtomicUsize,
}

/// One running pipeline's place under `--max-transcodes`; dropping it frees the place.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.transcodes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Budget {
    pub fn new(max_transcodes: usize, memory: usize) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                max_transcodes,
                transcodes: AtomicUsize::new(0),
                memory,
                bytes: AtomicUsize::new(0),
            }),
        }
    }

    /// A place for one more pipeline, if there is one.
    pub fn try_transcode(&self) -> Option<Permit> {
        let taken = self
            .inner
            .transcodes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.max_transcodes).then_some(n + 1)
            });
        taken.ok().map(|_| Permit {
            inner: self.inner.clone(),
        })
    }

    /// Pipelines holding a place now.
    pub fn transcodes(&self) -> usize {
        self.inner.transcodes.load(Ordering::Acquire)
    }

    pub fn max_transcodes(&self) -> usize {
        self.inner.max_transcodes
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
        let a = budget.try_transcode().expect("first");
        let _b = budget.try_transcode().expect("second");
        assert!(budget.try_transcode().is_none());
        drop(a);
        assert_eq!(budget.transcodes(), 1);
        assert!(budget.try_transcode().is_some());
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
