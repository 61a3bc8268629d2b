//! A stream's segments in memory: consecutive sequence numbers under a byte budget.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;

/// One finished segment as the HTTP layer needs it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub duration: Duration,
    pub bytes: Bytes,
}

/// Segments `first..first + len`, oldest first. When the bytes held exceed the budget the oldest
/// segments go; the newest one always stays, whatever its size.
#[derive(Debug)]
pub struct Ring {
    segments: VecDeque<Stored>,
    bytes: usize,
    budget: usize,
    /// Sequence number the next pushed segment must carry.
    next: u64,
}

impl Ring {
    pub fn new(budget: usize) -> Ring {
        Ring {
            segments: VecDeque::new(),
            bytes: 0,
            budget,
            next: 0,
        }
    }

    /// Appends a segment. Sequence numbers come from one segmenter and so are consecutive;
    /// anything else is a bug upstream, so the ring renumbers rather than holding a gap.
    pub fn push(&mut self, mut segment: Stored) {
        debug_assert_eq!(segment.sequence, self.next);
        segment.sequence = self.next;
        self.next += 1;
        self.bytes += segment.bytes.len();
        self.segments.push_back(segment);
        while self.bytes > self.budget && self.segments.len() > 1 {
            if let Some(old) = self.segments.pop_front() {
                self.bytes -= old.bytes.len();
            }
        }
    }

    pub fn get(&self, sequence: u64) -> Option<&Stored> {
        let first = self.first_sequence();
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments.get(index)
    }

    /// Sequence number of the oldest segment still held (equals `made()` when empty).
    pub fn first_sequence(&self) -> u64 {
        self.next - self.segments.len() as u64
    }

    /// How many segments were ever pushed.
    pub fn made(&self) -> u64 {
        self.next
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = &Stored> {
        self.segments.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(sequence: u64, len: usize) -> Stored {
        Stored {
            sequence,
            duration: Duration::from_secs(2),
            bytes: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn evicts_oldest_over_budget() {
        let mut ring = Ring::new(1000);
        for i in 0..5 {
            ring.push(seg(i, 300));
        }
        assert_eq!(ring.made(), 5);
        assert_eq!(ring.first_sequence(), 2);
        assert_eq!(ring.bytes(), 900);
        assert!(ring.get(1).is_none());
        assert_eq!(ring.get(4).map(|s| s.sequence), Some(4));
        assert!(ring.get(5).is_none());
    }

    #[test]
    fn keeps_newest_even_if_too_big() {
        let mut ring = Ring::new(100);
        ring.push(seg(0, 50));
        ring.push(seg(1, 500));
        assert_eq!(ring.first_sequence(), 1);
        assert_eq!(ring.bytes(), 500);
    }
}
