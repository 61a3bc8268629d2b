//! The segment plan: which media time each segment covers, known up front when the duration is.

use std::time::Duration;

/// A duration this little past a segment boundary does not make one more segment: the encoder
/// may not even make it (no video frame after the boundary), and a player would wait for it.
const BOUNDARY_TOLERANCE: Duration = Duration::from_millis(250);

/// Segment `k` covers media time `[origin + k*target, origin + (k+1)*target)`; the last one is
/// shorter. `origin` is where the source's audio and video begin: real files rarely start at 0
/// (an MPEG-PS at 0.53 s, a broadcast recording at 1.44 s), and a grid counted from 0 would miss
/// every keyframe by that much.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    target: Duration,
    origin: Duration,
    /// Set for a VOD plan: the whole playlist is known. `None` for a growing EVENT playlist.
    duration: Option<Duration>,
}

impl Plan {
    /// A complete (VOD) plan when `duration` (of the audio and video, from `origin` on) is
    /// known, else a growing (EVENT) one.
    pub fn new(target: Duration, origin: Duration, duration: Option<Duration>) -> Plan {
        let duration = duration.filter(|d| *d > BOUNDARY_TOLERANCE && !target.is_zero());
        Plan {
            target,
            origin,
            duration,
        }
    }

    pub fn is_vod(&self) -> bool {
        self.duration.is_some()
    }

    pub fn target(&self) -> Duration {
        self.target
    }

    /// EXT-X-TARGETDURATION: keyframes land at most a frame after each boundary, so every
    /// measured segment rounds to at most this.
    pub fn target_duration_secs(&self) -> u64 {
        self.target.as_secs_f64().ceil().max(1.0) as u64
    }

    /// Number of segments of a VOD plan.
    pub fn count(&self) -> Option<u64> {
        let duration = self.duration?.saturating_sub(BOUNDARY_TOLERANCE);
        let target = self.target.as_nanos();
        Some(u64::try_from(duration.as_nanos().div_ceil(target)).unwrap_or(u64::MAX))
    }

    /// Media time at which the first segment starts.
    pub fn origin(&self) -> Duration {
        self.origin
    }

    /// Media time at which segment `k` starts, in the source's own timeline.
    pub fn start_of(&self, k: u64) -> Duration {
        self.offset_of(k).saturating_add(self.origin)
    }

    /// Time from the start of the media (`origin`) to segment `k`.
    fn offset_of(&self, k: u64) -> Duration {
        self.target
            .checked_mul(u32::try_from(k).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX)
    }

    /// Planned duration of segment `k` of a VOD plan.
    pub fn duration_of(&self, k: u64) -> Option<Duration> {
        let total = self.duration?;
        if k >= self.count()? {
            return None;
        }
        Some(total.saturating_sub(self.offset_of(k)).min(self.target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn vod_plan_covers_the_whole_duration() {
        let plan = Plan::new(secs(2.0), Duration::ZERO, Some(secs(9.5)));
        assert!(plan.is_vod());
        assert_eq!(plan.count(), Some(5));
        assert_eq!(plan.duration_of(0), Some(secs(2.0)));
        assert_eq!(plan.duration_of(4), Some(secs(1.5)));
        assert_eq!(plan.duration_of(5), None);
        let sum: Duration = (0..5).filter_map(|k| plan.duration_of(k)).sum();
        assert_eq!(sum, secs(9.5));
        assert_eq!(plan.start_of(3), secs(6.0));
    }

    #[test]
    fn a_late_origin_shifts_starts_but_not_durations() {
        let plan = Plan::new(secs(2.0), secs(0.53), Some(secs(9.5)));
        assert_eq!(plan.count(), Some(5));
        assert_eq!(plan.origin(), secs(0.53));
        assert_eq!(plan.start_of(0), secs(0.53));
        assert_eq!(plan.start_of(3), secs(6.53));
        assert_eq!(plan.duration_of(4), Some(secs(1.5)));
    }

    #[test]
    fn exact_multiples_do_not_add_an_empty_segment() {
        assert_eq!(
            Plan::new(secs(2.0), Duration::ZERO, Some(secs(10.0))).count(),
            Some(5)
        );
        // A tail shorter than the tolerance joins the last segment rather than making its own.
        assert_eq!(
            Plan::new(secs(2.0), Duration::ZERO, Some(secs(10.0005))).count(),
            Some(5)
        );
        assert_eq!(
            Plan::new(secs(2.0), Duration::ZERO, Some(secs(10.2))).count(),
            Some(5)
        );
        assert_eq!(
            Plan::new(secs(2.0), Duration::ZERO, Some(secs(10.3))).count(),
            Some(6)
        );
    }

    #[test]
    fn unknown_duration_is_event() {
        let plan = Plan::new(secs(2.0), Duration::ZERO, None);
        assert!(!plan.is_vod());
        assert_eq!(plan.count(), None);
        assert_eq!(plan.target_duration_secs(), 2);
        assert_eq!(
            Plan::new(secs(1.5), Duration::ZERO, None).target_duration_secs(),
            2
        );
    }
}
