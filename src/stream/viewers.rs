//! Where a stream's viewers are: playback positions inferred from the segments they ask for.

use std::time::{Duration, Instant};

/// A viewer that asked for nothing for this long is forgotten.
pub const VIEWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Positions tracked per stream; beyond this the least recently seen is forgotten.
const MAX_VIEWERS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Cursor {
    position: u64,
    seen: Instant,
}

/// Playback positions. A request just past a known position (within `step`) is that viewer
/// moving on; anything else is a new viewer or a seek, and the old position fades out after
/// [`VIEWER_TIMEOUT`].
#[derive(Debug, Default)]
pub struct Viewers {
    cursors: Vec<Cursor>,
}

impl Viewers {
    /// Records a request for segment `k`; `step` is how far one request may move a viewer.
    pub fn touch(&mut self, k: u64, step: u64, now: Instant) {
        self.forget_idle(now);
        // A re-request of a recent segment (a retry, a second rendition of the same
        // buffer) keeps the position; a request a little ahead moves it.
        let near = self
            .cursors
            .iter_mut()
            .filter(|c| k <= c.position.saturating_add(step) && c.position <= k.saturating_add(2))
            .min_by_key(|c| c.position.abs_diff(k));
        match near {
            Some(cursor) => {
                cursor.position = cursor.position.max(k);
                cursor.seen = now;
            }
            None => {
                if self.cursors.len() >= MAX_VIEWERS
                    && let Some(oldest) =
                        self.cursors.iter().enumerate().min_by_key(|(_, c)| c.seen)
                {
                    let index = oldest.0;
                    self.cursors.swap_remove(index);
                }
                self.cursors.push(Cursor {
                    position: k,
                    seen: now,
                });
            }
        }
    }

    fn forget_idle(&mut self, now: Instant) {
        self.cursors
            .retain(|c| now.saturating_duration_since(c.seen) < VIEWER_TIMEOUT);
    }

    /// Current positions of viewers seen within the timeout.
    pub fn positions(&self, now: Instant) -> Vec<u64> {
        self.cursors
            .iter()
            .filter(|c| now.saturating_duration_since(c.seen) < VIEWER_TIMEOUT)
            .map(|c| c.position)
            .collect()
    }

    /// The furthest position of any viewer within `range`.
    pub fn furthest_in(&self, range: std::ops::RangeInclusive<u64>, now: Instant) -> Option<u64> {
        self.positions(now)
            .into_iter()
            .filter(|p| range.contains(p))
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_requests_move_one_viewer_and_seeks_add_one() {
        let now = Instant::now();
        let mut viewers = Viewers::default();
        for k in 0..10 {
            viewers.touch(k, 4, now);
        }
        assert_eq!(viewers.positions(now), [9]);
        viewers.touch(8, 4, now);
        assert_eq!(viewers.positions(now), [9]);
        viewers.touch(200, 4, now);
        let mut positions = viewers.positions(now);
        positions.sort();
        assert_eq!(positions, [9, 200]);
        assert_eq!(viewers.furthest_in(0..=50, now), Some(9));
        assert_eq!(viewers.furthest_in(100..=300, now), Some(200));
    }

    #[test]
    fn idle_viewers_are_forgotten() {
        let start = Instant::now();
        let mut viewers = Viewers::default();
        viewers.touch(3, 4, start);
        let later = start + VIEWER_TIMEOUT + Duration::from_secs(1);
        assert!(viewers.positions(later).is_empty());
        viewers.touch(100, 4, later);
        assert_eq!(viewers.positions(later), [100]);
    }
}
