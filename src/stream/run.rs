//! One run: a pipeline making a stream's segments from some point on, throttled to its viewers.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::budget::Permit;
use super::ring::{Body, Stored};
use super::{Plan, SEEK_DISTANCE, Shared, State, StreamError};
use crate::segmenter::Segment;
use crate::transcode::{Output, Transcode, TranscodeError};

/// A run paused with no viewer in its range for this long is stopped.
pub const RUN_IDLE: Duration = Duration::from_secs(10);
/// Most pipelines one stream runs at once; starting another stops the least needed.
pub const MAX_RUNS: usize = 3;
/// How often a paused run rechecks whether it may go on (viewers also wake it).
const THROTTLE_POLL: Duration = Duration::from_millis(500);
/// A run that failed is remembered this long, so requests get its error instead of a retry storm.
pub const FAILED_RUN_MEMORY: Duration = Duration::from_secs(10);

/// One pipeline making segments `start, start + 1, ...`.
pub(super) struct Run {
    pub(super) id: u64,
    pub(super) start: u64,
    /// The segment it delivers next.
    pub(super) next: u64,
    pub(super) made: u64,
    pub(super) transcode: Option<Transcode>,
    /// Its place under `--max-transcodes`, held until the pipeline is stopped or ends.
    pub(super) permit: Option<Permit>,
    pub(super) cancelled: bool,
    pub(super) ended: Option<(Instant, Result<(), TranscodeError>)>,
    /// Since when it has been paused with no viewer in its range.
    pub(super) idle_since: Option<Instant>,
    /// When it last delivered a segment or stopped pausing: the start of its current work.
    pub(super) working_since: Instant,
}

impl Run {
    pub(super) fn running(&self) -> bool {
        !self.cancelled && self.ended.is_none()
    }

    pub(super) fn covers(&self, k: u64) -> bool {
        self.start <= k && k <= self.next.saturating_add(SEEK_DISTANCE)
    }

    pub(super) fn cancel(&mut self) -> Option<Transcode> {
        self.cancelled = true;
        self.permit = None;
        self.transcode.take()
    }
}

/// Starts a run at segment `k`, stopping the least needed one if the stream has too many or
/// every transcode place is taken.
pub(super) fn start_run(
    shared: &Arc<Shared>,
    state: &mut State,
    k: u64,
) -> Result<(), StreamError> {
    let now = Instant::now();
    state.runs.retain(|r| {
        r.running()
            || r.ended
                .as_ref()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) < FAILED_RUN_MEMORY)
    });
    let mut permit = state
        .reserved
        .take()
        .or_else(|| shared.budget.try_transcode());
    let running = state.runs.iter().filter(|r| r.running()).count();
    if running >= MAX_RUNS || (permit.is_none() && running > 0) {
        let positions = state.viewers.positions(now);
        // The run with no viewer in its range, else the one furthest from the new position.
        let victim = state
            .runs
            .iter_mut()
            .filter(|r| r.running())
            .max_by_key(|r| {
                let served = positions.iter().any(|p| r.covers(*p));
                (!served, r.start.abs_diff(k))
            });
        if let Some(victim) = victim {
            drop(victim.cancel());
            shared.throttle.notify_all();
        }
    }
    let permit = match permit.take().or_else(|| shared.budget.try_transcode()) {
        Some(permit) => permit,
        None => return Err(StreamError::Busy(shared.budget.max_transcodes())),
    };
    // Segment 0 can start before the probe has made the plan (the run then finds the origin
    // itself, see `Transcode::start`); any other start needs the plan.
    let (at, origin) = match state.plan() {
        Some(plan) => (plan.start_of(k), Some(plan.origin())),
        None if k == 0 => (Duration::ZERO, None),
        None => return Ok(()),
    };
    let id = state.next_run_id;
    state.next_run_id += 1;
    state.runs.push(Run {
        id,
        start: k,
        next: k,
        made: 0,
        transcode: None,
        permit: Some(permit),
        cancelled: false,
        ended: None,
        idle_since: None,
        working_since: now,
    });
    tracing::debug!(stream = %shared.name, run = id, segment = k, "starting run");
    let output: Arc<dyn Output> = Arc::new(Feed {
        shared: Arc::downgrade(shared),
        run: id,
    });
    let (source, settings, at) = (shared.source.clone(), shared.settings.clone(), at);
    let weak = Arc::downgrade(shared);
    // Building and prerolling a pipeline blocks; never on the async runtime.
    let spawned = std::thread::Builder::new()
        .name("hlss-start".into())
        .spawn(move || {
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Transcode::start(&source, &settings, at, origin, output.clone())
            }));
            let Some(shared) = weak.upgrade() else { return };
            match started {
                Ok(Ok(transcode)) => {
                    let mut state = shared.state.lock();
                    match state.run_mut(id) {
                        Some(run) if !run.cancelled => run.transcode = Some(transcode),
                        // Cancelled while starting: dropping it stops it.
                        _ => drop(transcode),
                    }
                }
                Ok(Err(err)) => output.end(Err(err)),
                Err(_) => output.end(Err(TranscodeError::Failed(
                    "internal error while building the pipeline".into(),
                ))),
            }
        });
    if spawned.is_err()
        && let Some(run) = state.run_mut(id)
    {
        run.ended = Some((
            now,
            Err(TranscodeError::Failed("cannot start a thread".into())),
        ));
        run.permit = None;
    }
    Ok(())
}

/// A run's view of its stream. It holds the stream weakly: the pipeline's callbacks must not
/// keep alive the stream that owns the pipeline.
struct Feed {
    shared: Weak<Shared>,
    run: u64,
}

impl Output for Feed {
    fn segment(&self, segment: Segment) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let read_ahead = shared.limits.read_ahead;
        let mut state = shared.state.lock();
        let Some(run) = state.run_mut(self.run) else {
            return;
        };
        if run.cancelled {
            return;
        }
        let k = run.start + segment.sequence;
        run.next = k + 1;
        run.made += 1;
        let now = Instant::now();
        let busy = now.saturating_duration_since(run.working_since);
        run.working_since = now;
        state.made_media += segment.duration;
        state.made_busy += busy;
        let beyond_plan = state
            .plan()
            .and_then(Plan::count)
            .is_some_and(|count| k >= count);
        if !beyond_plan {
            let eviction = state.eviction(read_ahead);
            let positions = state.viewers.positions(Instant::now());
            state.ring.insert(
                k,
                Stored {
                    duration: segment.duration,
                    body: Body::new(segment.bytes),
                },
                eviction,
                &positions,
            );
            state.segments_made += 1;
        }
        // Another run already made what comes next: this one would only repeat it.
        let overtaken = state
            .runs
            .iter()
            .any(|r| r.id != self.run && r.running() && r.start <= k + 1 && k + 1 < r.next);
        drop(state);
        shared.bump();
        if overtaken {
            stop_run(&shared, self.run, "caught up with another run");
            return;
        }
        throttle(&shared, self.run, read_ahead);
    }

    fn end(&self, result: Result<(), TranscodeError>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let transcode = {
            let mut state = shared.state.lock();
            let planned = state.plan().and_then(Plan::count);
            let Some(run) = state.run_mut(self.run) else {
                return;
            };
            match &result {
                Ok(()) if planned.is_some_and(|count| run.next < count) && !run.cancelled => {
                    tracing::warn!(
                        stream = %shared.name,
                        run = run.id,
                        segments = run.next,
                        planned = planned,
                        "the media ended before its announced duration (truncated or damaged); \
                         later segments are 404"
                    )
                }
                Ok(()) => tracing::debug!(
                    stream = %shared.name, run = run.id, segments = run.made, "run complete"
                ),
                Err(err) if run.made == 0 => {
                    tracing::warn!(stream = %shared.name, run = run.id, "run failed to start: {err}")
                }
                Err(err) => tracing::warn!(
                    stream = %shared.name,
                    run = run.id,
                    segments = run.made,
                    "run failed; the stream ends at its last good segment: {err}"
                ),
            }
            run.ended = Some((Instant::now(), result));
            run.permit = None;
            run.transcode.take()
        };
        drop(transcode);
        shared.bump();
    }
}

/// Blocks the run's streaming thread while it is far enough ahead of its viewers, and stops
/// the run when no viewer has needed it for [`RUN_IDLE`].
fn throttle(shared: &Arc<Shared>, id: u64, read_ahead: u64) {
    let mut state = shared.state.lock();
    loop {
        let now = Instant::now();
        if !state.should_pause(id, read_ahead, now) {
            if let Some(run) = state.run_mut(id) {
                run.idle_since = None;
                // Time spent paused is not transcoding time.
                run.working_since = now;
            }
            return;
        }
        let Some(run) = state.run_mut(id) else {
            return;
        };
        if run.cancelled {
            return;
        }
        let served = state
            .runs
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.start..=r.next.saturating_add(SEEK_DISTANCE))
            .and_then(|range| state.viewers.furthest_in(range, now))
            .is_some();
        let Some(run) = state.run_mut(id) else {
            return;
        };
        let idle_since = if served {
            None
        } else {
            Some(*run.idle_since.get_or_insert(now))
        };
        run.idle_since = idle_since;
        if idle_since.is_some_and(|since| now.saturating_duration_since(since) >= RUN_IDLE) {
            drop(state);
            stop_run(shared, id, "no viewer needs it");
            return;
        }
        shared.throttle.wait_for(&mut state, THROTTLE_POLL);
    }
}

fn stop_run(shared: &Shared, id: u64, why: &str) {
    let transcode = shared.state.lock().run_mut(id).and_then(Run::cancel);
    if transcode.is_some() {
        tracing::debug!(stream = %shared.name, run = id, "stopping run: {why}");
    }
    drop(transcode);
    shared.throttle.notify_all();
    shared.bump();
}
