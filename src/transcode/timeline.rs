//! One output timeline for every run: a buffer's running time is its media time minus the origin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;
use parking_lot::Mutex;

/// The anchor a run's branches share. Every run of a stream maps media time the same way, so
/// segment `k` gets the same timestamps and the same forced keyframe whichever run made it,
/// whatever segment (start, time, base) the demuxer announces after a seek or without one.
pub(super) struct Timeline {
    /// Media (stream) time that becomes running time 0. `None` until known: a run of a stream
    /// that was not probed (EVENT) takes the start of the first segment it sees (MPEG-PS and -TS
    /// demuxers start theirs at the first sample, which is what the probe measures; qtdemux
    /// starts an MP4 with a late edit list with a gap segment at 0, so there it is wrong).
    origin: Mutex<Option<gst::ClockTime>>,
    /// Media time the run starts at. Runs seek to a little before it (some demuxers land late)
    /// and drop what comes earlier themselves, so they keep exactly what a run from the start
    /// has from there on.
    at: gst::ClockTime,
    /// Whether buffers before `at` are dropped: from the start for a run that reads from the
    /// origin, from its seek for one that seeks (its first preroll must not wait for `at`).
    dropping: AtomicBool,
    /// Whether the streams pass through undecoded (see [`before_start`]).
    direct: bool,
    /// Whether a video branch exists. decodebin links every stream before any data flows, so
    /// the first buffer on any branch sees the final value.
    video: AtomicBool,
    landing: Mutex<Landing>,
}

/// What one branch has seen since its latest flush.
#[derive(Default)]
struct Branch {
    /// The seek ([`Landing::seek`]) whose flush went through last; `None` before any.
    flushed_for: Option<u64>,
    /// Its first buffer since that flush has been reported to the landing.
    landed: bool,
    /// A buffer at or past the run's start has passed: nothing after it comes before.
    through: bool,
}

/// Where the branches' first buffers after the latest seek lay.
#[derive(Default)]
struct Landing {
    /// Bumped by every [`Timeline::expect_landing`].
    seek: u64,
    /// The latest of the branches' first buffers since then, in media time.
    latest: Option<gst::ClockTime>,
}

impl Timeline {
    pub(super) fn new(
        origin: Option<gst::ClockTime>,
        at: gst::ClockTime,
        dropping: bool,
        direct: bool,
    ) -> Arc<Timeline> {
        Arc::new(Timeline {
            origin: Mutex::new(origin),
            at,
            dropping: AtomicBool::new(dropping),
            direct,
            video: AtomicBool::new(false),
            landing: Mutex::new(Landing::default()),
        })
    }

    /// Records that the run has a video branch (call before its data flows).
    pub(super) fn has_video(&self) {
        self.video.store(true, Ordering::Release);
    }

    /// Anchors the branch whose first sink pad is `pad`: rewrites every time segment so that
    /// running time downstream is media time minus the origin, and drops what comes before the
    /// run's start.
    pub(super) fn anchor(self: &Arc<Self>, pad: &gst::Pad) {
        let branch = Arc::new(Mutex::new(Branch::default()));
        let (timeline, on_event) = (self.clone(), branch.clone());
        // Flush events reach only probes that ask for them.
        let events = gst::PadProbeType::EVENT_DOWNSTREAM | gst::PadProbeType::EVENT_FLUSH;
        pad.add_probe(events, move |_, info| {
            // A panic must not unwind into C; the event then passes unchanged.
            super::guard::guard("the timeline probe", || {
                let flush_stop = matches!(
                    &info.data,
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::FlushStop
                );
                if flush_stop {
                    timeline.flushed(&on_event);
                } else {
                    timeline.rewrite(info);
                }
            });
            gst::PadProbeReturn::Ok
        });
        let timeline = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            super::guard::guard("the timeline probe", || {
                timeline.on_buffer(pad, info, &branch)
            })
            .unwrap_or(gst::PadProbeReturn::Ok)
        });
    }

    /// Media time the run starts at.
    pub(super) fn at(&self) -> gst::ClockTime {
        self.at
    }

    /// Starts dropping what comes before the run's start and watching where the next seek lands.
    pub(super) fn expect_landing(&self) {
        self.dropping.store(true, Ordering::Release);
        let mut landing = self.landing.lock();
        landing.seek += 1;
        landing.latest = None;
    }

    /// Whether every branch's first buffer since [`Timeline::expect_landing`] came at or before
    /// the run's start (`true` when none came: nothing to go back for).
    pub(super) fn landed_in_time(&self) -> bool {
        self.landing.lock().latest.is_none_or(|t| t <= self.at)
    }

    /// A flush (a seek) went through `branch`: what comes next is from the new position.
    fn flushed(&self, branch: &Mutex<Branch>) {
        let mut branch = branch.lock();
        *branch = Branch {
            flushed_for: Some(self.landing.lock().seek),
            ..Branch::default()
        };
    }

    fn on_buffer(
        &self,
        pad: &gst::Pad,
        info: &gst::PadProbeInfo,
        branch: &Mutex<Branch>,
    ) -> gst::PadProbeReturn {
        if !self.dropping.load(Ordering::Acquire) {
            return gst::PadProbeReturn::Ok;
        }
        let mut branch = branch.lock();
        if branch.through {
            return gst::PadProbeReturn::Ok;
        }
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(start) = buffer.pts().and_then(|pts| stream_time(pad, pts)) else {
            // Before the segment: an accurate seek starts pictures at the keyframe before its
            // position for decoders, which clip them. mpegtsmux clips them too, but only as it
            // takes them, and meanwhile muxes the sound beside them: a direct run drops them here.
            return if self.direct {
                gst::PadProbeReturn::Handled
            } else {
                gst::PadProbeReturn::Ok
            };
        };
        if !branch.landed {
            let mut landing = self.landing.lock();
            // Buffers still on their way from before the seek's flush do not count.
            if branch.flushed_for == Some(landing.seek) {
                branch.landed = true;
                landing.latest = Some(landing.latest.map_or(start, |t| t.max(start)));
            }
        }
        let end = start.saturating_add(buffer.duration().unwrap_or(gst::ClockTime::ZERO));
        let video = pad
            .current_caps()
            .and_then(|caps| caps.structure(0).map(|s| s.name().starts_with("video/")))
            .unwrap_or(false);
        let kind = match (self.direct, video) {
            (false, video) => Kind::Decoded { video },
            (true, true) => Kind::Coded {
                keyframe: !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
            },
            (true, false) if self.video.load(Ordering::Acquire) => Kind::BesideVideo,
            (true, false) => Kind::AudioOnly,
        };
        if before_start(start, end, kind, self.at) {
            // Handled: the binding releases the buffer (with Drop it would be unreffed twice).
            gst::PadProbeReturn::Handled
        } else {
            // Decoded timestamps only grow, and coded pictures follow their keyframe: the rest
            // passes unexamined until the next flush.
            branch.through = true;
            gst::PadProbeReturn::Ok
        }
    }

    fn rewrite(&self, info: &mut gst::PadProbeInfo) {
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return;
        };
        let gst::EventView::Segment(view) = event.view() else {
            return;
        };
        let Some(segment) = view.segment().downcast_ref::<gst::ClockTime>() else {
            return;
        };
        let Some(time) = segment.time() else {
            return;
        };
        let origin = *self.origin.lock().get_or_insert(time);
        let Some(rebased) = rebase(segment, origin) else {
            return;
        };
        let replacement = gst::event::Segment::builder(&rebased)
            .seqnum(event.seqnum())
            .running_time_offset(event.running_time_offset())
            .build();
        info.data = Some(gst::PadProbeData::Event(replacement));
    }
}

/// What a branch carries, for deciding where its run begins.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Decoded pictures (`video`) or sound, about to be encoded.
    Decoded { video: bool },
    /// Coded pictures passed through, in decode order.
    Coded { keyframe: bool },
    /// Sound passed through or encoded beside coded pictures.
    BesideVideo,
    /// Sound with no picture in the run, beside nothing to cut at.
    AudioOnly,
}

/// Whether a buffer from `start` to `end` (media time) comes before a run starting at `at`.
/// - A decoded picture belongs to the segment its start falls in; decoded sound that reaches past
///   `at` is kept whole, as a run from the start has it.
/// - Coded pictures can only start at a keyframe: everything before the first keyframe at or
///   after `at` (a keyframe time, for a direct run) goes, everything after it in decode order
///   stays, including pictures shown earlier (open GOPs), as in a run from the start.
/// - Sound beside coded pictures all passes, from the seek's landing (a second early): the sound
///   from the keyframe's DTS on belongs after it (mpegtsmux orders by DTS), and what comes
///   before goes to the segmenter, which drops it (it precedes the first keyframe, or, muxed
///   after it, comes from before its DTS: see the segmenter's trim).
/// - Sound alone starts at the frame that starts at or after `at` (the segmenter's grid point).
fn before_start(
    start: gst::ClockTime,
    end: gst::ClockTime,
    kind: Kind,
    at: gst::ClockTime,
) -> bool {
    match kind {
        Kind::Decoded { video: true } => start < at,
        Kind::Decoded { video: false } => end <= at,
        Kind::Coded { keyframe } => !keyframe || start < at,
        Kind::BesideVideo => false,
        Kind::AudioOnly => start < at,
    }
}

/// The media (stream) time of `pts` on `pad`, by its current segment: what a seek aims at.
pub(super) fn stream_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<gst::ClockTime> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    event
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_stream_time(pts)
}

/// `segment` adjusted so that a buffer's running time is its stream time minus `origin`.
/// `None` for what we never produce and leave alone: rates other than 1, unset fields.
pub(super) fn rebase(
    segment: &gst::FormattedSegment<gst::ClockTime>,
    origin: gst::ClockTime,
) -> Option<gst::FormattedSegment<gst::ClockTime>> {
    if segment.rate() != 1.0 || segment.applied_rate() != 1.0 {
        return None;
    }
    // At rate 1: running = pts - start + base, stream = pts - start + time.
    let shift = shift(segment.time()?, segment.base()?, origin)?;
    let mut rebased = segment.clone();
    rebased.offset_running_time(shift).ok()?;
    Some(rebased)
}

/// What to add to running time so it becomes stream time minus `origin`.
fn shift(time: gst::ClockTime, base: gst::ClockTime, origin: gst::ClockTime) -> Option<i64> {
    let signed = |t: gst::ClockTime| i128::from(t.nseconds());
    i64::try_from(signed(time) - signed(base) - signed(origin)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(v)
    }

    fn segment(start: u64, time: u64, base: u64) -> gst::FormattedSegment<gst::ClockTime> {
        gst::init().expect("GStreamer");
        let mut s = gst::FormattedSegment::<gst::ClockTime>::new();
        s.set_start(ms(start));
        s.set_time(ms(time));
        s.set_position(ms(start));
        s.set_base(ms(base));
        s
    }

    /// Running time of a buffer at stream time `at` (pts = at - time + start).
    fn running(s: &gst::FormattedSegment<gst::ClockTime>, at: u64) -> Option<u64> {
        let pts = at - s.time().unwrap().mseconds() + s.start().unwrap().mseconds();
        s.to_running_time(ms(pts)).map(|t| t.mseconds())
    }

    #[test]
    fn a_run_from_the_start_counts_from_the_origin() {
        // MPEG-PS as GStreamer's demuxer announces it: the segment starts at the first sample.
        let s = rebase(&segment(540, 540, 0), ms(540)).unwrap();
        assert_eq!(running(&s, 540), Some(0));
        assert_eq!(running(&s, 2540), Some(2000));
    }

    #[test]
    fn a_seek_lands_on_the_same_running_time() {
        // A flushing seek to origin + 3 * 2 s: the segment starts there with base 0.
        let s = rebase(&segment(6540, 6540, 0), ms(540)).unwrap();
        assert_eq!(running(&s, 6540), Some(6000));
        assert_eq!(running(&s, 8540), Some(8000));
    }

    #[test]
    fn a_segment_from_zero_before_a_late_origin_is_shifted_back() {
        // A demuxer that starts its segment at 0 when the media begins at 0.5 s.
        let s = rebase(&segment(0, 0, 0), ms(500)).unwrap();
        assert_eq!(running(&s, 500), Some(0));
        assert_eq!(running(&s, 2500), Some(2000));
        // Nothing before the origin has a running time (there is no such sample anyway).
        assert_eq!(running(&s, 100), None);
    }

    #[test]
    fn an_accumulated_base_is_kept_continuous() {
        // A second segment after 10 s of running time whose media time continues at 10.54 s.
        let s = rebase(&segment(0, 10_540, 10_000), ms(540)).unwrap();
        assert_eq!(running(&s, 10_540), Some(10_000));
    }

    #[test]
    fn before_the_start_pictures_by_their_start_sound_by_its_end() {
        // A run from 12.54 s: the picture at 12.50 s belongs to the segment before,
        let (picture, sound) = (
            Kind::Decoded { video: true },
            Kind::Decoded { video: false },
        );
        assert!(before_start(ms(12_500), ms(12_540), picture, ms(12_540)));
        assert!(!before_start(ms(12_540), ms(12_580), picture, ms(12_540)));
        // while sound reaching past 12.54 s is kept whole, as a run from the start has it.
        assert!(!before_start(ms(12_530), ms(12_554), sound, ms(12_540)));
        assert!(before_start(ms(12_516), ms(12_540), sound, ms(12_540)));
    }

    #[test]
    fn a_direct_run_starts_at_its_keyframe() {
        let key = Kind::Coded { keyframe: true };
        let delta = Kind::Coded { keyframe: false };
        // The keyframe before, and a picture after the start that is not a keyframe, go.
        assert!(before_start(ms(10_000), ms(10_040), key, ms(12_000)));
        assert!(before_start(ms(12_040), ms(12_080), delta, ms(12_000)));
        assert!(!before_start(ms(12_000), ms(12_040), key, ms(12_000)));
        // Sound beside pictures is trimmed by the segmenter, sound alone at its grid point.
        assert!(!before_start(
            ms(11_000),
            ms(11_021),
            Kind::BesideVideo,
            ms(12_000)
        ));
        assert!(before_start(
            ms(11_990),
            ms(12_011),
            Kind::AudioOnly,
            ms(12_000)
        ));
        assert!(!before_start(
            ms(12_000),
            ms(12_021),
            Kind::AudioOnly,
            ms(12_000)
        ));
    }

    #[test]
    fn other_rates_are_left_alone() {
        let mut s = segment(0, 0, 0);
        s.set_rate(2.0);
        assert_eq!(rebase(&s, ms(0)), None);
    }
}
