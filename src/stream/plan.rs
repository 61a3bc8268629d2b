//! The segment plan: which media time each segment covers, known up front when the duration is.

use std::time::Duration;

/// A duration this little past a segment boundary does not make one more segment: the encoder
/// may not even make it (no video frame after the boundary), and a player would wait for it.
const BOUNDARY_TOLERANCE: Duration = Duration::from_millis(250);

/// Where segment boundaries lie: on an even grid, where the encoder is told to put keyframes
/// (transcoded streams), or at the source's own keyframes (direct streams).
#[derive(Debug, Clone, PartialEq)]
enum Grid {
    /// Segment `k` covers media time `[origin + k*target, origin + (k+1)*target)`; the last one is
    /// shorter. `origin` is where the source's audio and video begin: real files rarely start at
    /// 0 (an MPEG-PS at 0.53 s, a broadcast recording at 1.44 s), and a grid counted from 0 would
    /// miss every keyframe by that much. `duration` is set for a VOD plan (the whole playlist is
    /// known) and `None` for a growing EVENT playlist.
    Even {
        target: Duration,
        origin: Duration,
        duration: Option<Duration>,
    },
    /// Segment `k` covers `[starts[k], starts[k + 1])`, the last one up to `end`: each start is
    /// a keyframe of the source.
    Keyframes {
        starts: Vec<Duration>,
        end: Duration,
    },
}

/// Which media time each segment covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    grid: Grid,
}

impl Plan {
    /// An even plan: complete (VOD) when `duration` (of the audio and video, from `origin` on)
    /// is known, else a growing (EVENT) one.
    pub fn new(target: Duration, origin: Duration, duration: Option<Duration>) -> Plan {
        let duration = duration.filter(|d| *d > BOUNDARY_TOLERANCE && !target.is_zero());
        Plan {
            grid: Grid::Even {
                target,
                origin,
                duration,
            },
        }
    }

    /// A VOD plan cut at the source's `keyframes` (media times, ascending) up to `end`: each
    /// segment runs from one keyframe to the first at least `target` later, less the
    /// segmenter's slack ([`segment_slack`]), which is the rule the segmenter cuts by, so every
    /// run cuts where the plan says. `None` without a keyframe before `end`.
    pub fn at_keyframes(keyframes: &[Duration], end: Duration, target: Duration) -> Option<Plan> {
        let first = *keyframes.first().filter(|k| **k < end)?;
        let shortest = target.saturating_sub(segment_slack(target));
        let mut starts = vec![first];
        for &keyframe in keyframes.iter().skip(1).filter(|k| **k < end) {
            if starts
                .last()
                .is_some_and(|last| keyframe.saturating_sub(*last) >= shortest)
            {
                starts.push(keyframe);
            }
        }
        Some(Plan {
            grid: Grid::Keyframes { starts, end },
        })
    }

    pub fn is_vod(&self) -> bool {
        match &self.grid {
            Grid::Even { duration, .. } => duration.is_some(),
            Grid::Keyframes { .. } => true,
        }
    }

    /// Where segments start after the origin, when they are not on an even grid (a keyframe
    /// plan): what an audio rendition must cut at to line up with the video.
    pub fn cut_points(&self) -> Option<std::sync::Arc<[Duration]>> {
        match &self.grid {
            Grid::Even { .. } => None,
            Grid::Keyframes { starts, .. } => {
                let origin = self.origin();
                Some(starts.iter().map(|s| s.saturating_sub(origin)).collect())
            }
        }
    }

    /// Media time at which the first segment starts.
    pub fn origin(&self) -> Duration {
        match &self.grid {
            Grid::Even { origin, .. } => *origin,
            Grid::Keyframes { starts, .. } => starts.first().copied().unwrap_or_default(),
        }
    }

    /// EXT-X-TARGETDURATION. Even plans: keyframes land at most a frame after each boundary,
    /// so every measured segment rounds to at most the target, rounded up. Keyframe plans: the
    /// longest segment, rounded to the nearest second as RFC 8216 rounds EXTINF.
    pub fn target_duration_secs(&self) -> u64 {
        match &self.grid {
            Grid::Even { target, .. } => target.as_secs_f64().ceil().max(1.0) as u64,
            Grid::Keyframes { .. } => self
                .longest()
                .map_or(1, |d| d.as_secs_f64().round().max(1.0) as u64),
        }
    }

    /// The longest segment of a VOD plan.
    pub fn longest(&self) -> Option<Duration> {
        (0..self.count()?).filter_map(|k| self.duration_of(k)).max()
    }

    /// Number of segments of a VOD plan.
    pub fn count(&self) -> Option<u64> {
        match &self.grid {
            Grid::Even {
                target, duration, ..
            } => {
                let duration = duration.as_ref()?.saturating_sub(BOUNDARY_TOLERANCE);
                let target = target.as_nanos();
                Some(u64::try_from(duration.as_nanos().div_ceil(target)).unwrap_or(u64::MAX))
            }
            Grid::Keyframes { starts, .. } => Some(starts.len() as u64),
        }
    }

    /// Media time at which segment `k` starts, in the source's own timeline.
    pub fn start_of(&self, k: u64) -> Duration {
        match &self.grid {
            Grid::Even { origin, target, .. } => even_offset(*target, k).saturating_add(*origin),
            Grid::Keyframes { starts, end } => usize::try_from(k)
                .ok()
                .and_then(|k| starts.get(k))
                .copied()
                .unwrap_or(*end),
        }
    }

    /// Planned duration of segment `k` of a VOD plan.
    pub fn duration_of(&self, k: u64) -> Option<Duration> {
        if k >= self.count()? {
            return None;
        }
        match &self.grid {
            Grid::Even {
                target, duration, ..
            } => {
                let total = (*duration)?;
                Some(total.saturating_sub(even_offset(*target, k)).min(*target))
            }
            Grid::Keyframes { .. } => {
                let next = self.start_of(k.saturating_add(1));
                Some(next.saturating_sub(self.start_of(k)))
            }
        }
    }
}

/// Time from the start of an even plan to segment `k`.
fn even_offset(target: Duration, k: u64) -> Duration {
    target
        .checked_mul(u32::try_from(k).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX)
}

/// How much earlier than the target a keyframe may come and still start a segment: the
/// segmenter's rule (`CUT_SLACK`, at most half the target).
pub fn segment_slack(target: Duration) -> Duration {
    crate::segmenter::CUT_SLACK.min(target / 2)
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

    #[test]
    fn keyframe_plans_cut_at_the_first_keyframe_past_the_target() {
        // Keyframes every 1 s, one late (4.5 s), one early but within the slack (7.8 s).
        let keyframes: Vec<Duration> = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 7.8, 8.5]
            .into_iter()
            .map(secs)
            .collect();
        let plan = Plan::at_keyframes(&keyframes, secs(10.0), secs(2.0)).expect("a plan");
        assert!(plan.is_vod());
        assert_eq!(plan.origin(), secs(0.5));
        assert_eq!(plan.count(), Some(4));
        let starts: Vec<Duration> = (0..4).map(|k| plan.start_of(k)).collect();
        assert_eq!(starts, [secs(0.5), secs(2.5), secs(4.5), secs(7.8)]);
        assert_eq!(plan.duration_of(3), Some(secs(10.0) - secs(7.8)));
        assert_eq!(plan.duration_of(4), None);
        assert_eq!(plan.longest(), Some(secs(3.3)));
        // 3.3 s rounds to 3.
        assert_eq!(plan.target_duration_secs(), 3);
        let sum: Duration = (0..4).filter_map(|k| plan.duration_of(k)).sum();
        assert_eq!(sum, secs(9.5));
    }

    #[test]
    fn a_keyframe_plan_needs_a_keyframe_before_the_end() {
        assert_eq!(Plan::at_keyframes(&[], secs(10.0), secs(2.0)), None);
        assert_eq!(
            Plan::at_keyframes(&[secs(10.0)], secs(10.0), secs(2.0)),
            None
        );
        let one = Plan::at_keyframes(&[secs(0.0)], secs(30.0), secs(2.0)).expect("a plan");
        assert_eq!(one.count(), Some(1));
        assert_eq!(one.longest(), Some(secs(30.0)));
    }
}
