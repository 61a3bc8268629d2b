//! One stream's state: its plan, the runs (pipelines) making its segments, its ring and viewers.
//!
//! A VOD stream knows every segment up front ([`Plan`]); a request for segment `k` is answered
//! from the ring, or by waiting for a run that is about to reach `k`, or by starting a run at `k`
//! (a seek). Runs are throttled: one that is more than `read_ahead` segments past the furthest
//! viewer it serves blocks in its output callback, which stalls its pipeline at no CPU cost, and
//! one that nobody has needed for [`RUN_IDLE`] is stopped. An EVENT stream (unknown duration, or
//! `--playlist event`) has a single run from the start and a playlist that grows.

mod plan;
mod registry;
mod ring;
mod viewers;

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

pub use plan::Plan;
pub use registry::Registry;

use crate::config::{PlaylistMode, StreamLimits as Limits};
use crate::library::Source;
use crate::segmenter::Segment;
use crate::transcode::{Output, Transcode, TranscodeError};
use ring::{Eviction, Ring, Stored};
use viewers::Viewers;

/// Segments a first EVENT playlist request waits for (players want three to start).
pub const READY_SEGMENTS: u64 = 3;
/// Longest a playlist request waits for the stream to be probed (VOD) or its first segments (EVENT).
pub const PLAYLIST_WAIT: Duration = Duration::from_secs(30);
/// Longest a segment request waits for its segment.
pub const SEGMENT_WAIT: Duration = Duration::from_secs(30);
/// A request this many segments or fewer past a running pipeline waits for it instead of
/// starting another run (a new run costs about as much as transcoding a few segments).
pub const SEEK_DISTANCE: u64 = 4;
/// EVENT playlists: how far past the newest segment a request may ask and still wait.
pub const SEGMENT_WAIT_AHEAD: u64 = 3;
/// A run paused with no viewer in its range for this long is stopped.
pub const RUN_IDLE: Duration = Duration::from_secs(10);
/// Most pipelines one stream runs at once; starting another stops the least needed.
pub const MAX_RUNS: usize = 3;
/// How often a paused run rechecks whether it may go on (viewers also wake it).
const THROTTLE_POLL: Duration = Duration::from_millis(500);
/// A run that failed is remembered this long, so requests get its error instead of a retry storm.
const FAILED_RUN_MEMORY: Duration = Duration::from_secs(10);

/// Why a stream cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
    #[error("the stream is still starting; try again shortly")]
    NotReady,
    #[error("no such segment")]
    NoSuchSegment,
    #[error("segment {0} is no longer held in memory")]
    Evicted(u64),
}

/// What a playlist is written from: a consistent copy taken under one lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub vod: bool,
    pub target_duration: u64,
    pub first_sequence: u64,
    pub segments: Vec<(u64, Duration)>,
    pub ended: bool,
}

/// Figures about one stream, for status pages and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub segments_held: usize,
    pub bytes_held: usize,
    pub runs_running: usize,
    pub runs_started: u64,
    pub segments_made: u64,
}

enum Probing {
    Pending,
    Ready(Plan),
    Failed(TranscodeError),
}

/// One pipeline making segments `start, start + 1, ...`.
struct Run {
    id: u64,
    start: u64,
    /// The segment it delivers next.
    next: u64,
    made: u64,
    transcode: Option<Transcode>,
    cancelled: bool,
    ended: Option<(Instant, Result<(), TranscodeError>)>,
    /// Since when it has been paused with no viewer in its range.
    idle_since: Option<Instant>,
}

impl Run {
    fn running(&self) -> bool {
        !self.cancelled && self.ended.is_none()
    }

    fn covers(&self, k: u64) -> bool {
        self.start <= k && k <= self.next.saturating_add(SEEK_DISTANCE)
    }

    fn cancel(&mut self) -> Option<Transcode> {
        self.cancelled = true;
        self.transcode.take()
    }
}

struct State {
    probing: Probing,
    ring: Ring,
    runs: Vec<Run>,
    viewers: Viewers,
    next_run_id: u64,
    segments_made: u64,
}

impl State {
    fn plan(&self) -> Option<&Plan> {
        match &self.probing {
            Probing::Ready(plan) => Some(plan),
            _ => None,
        }
    }

    fn run_mut(&mut self, id: u64) -> Option<&mut Run> {
        self.runs.iter_mut().find(|r| r.id == id)
    }

    fn eviction(&self, read_ahead: u64) -> Eviction {
        match self.plan() {
            Some(plan) if plan.is_vod() => Eviction::Viewers { read_ahead },
            _ => Eviction::Oldest,
        }
    }

    /// Whether run `id` should pause: it is far enough past every viewer it serves.
    fn should_pause(&self, id: u64, read_ahead: u64, now: Instant) -> bool {
        let Some(run) = self.runs.iter().find(|r| r.id == id) else {
            return false;
        };
        match self
            .viewers
            .furthest_in(run.start..=run.next.saturating_add(SEEK_DISTANCE), now)
        {
            Some(wanted) => run.next > wanted.saturating_add(read_ahead),
            None => run.next > run.start.saturating_add(read_ahead),
        }
    }
}

/// State shared with the runs' threads.
struct Shared {
    name: String,
    source: Source,
    settings: crate::config::EncoderSettings,
    limits: Limits,
    state: Mutex<State>,
    /// Bumped on every change a waiting request may care about.
    changed: watch::Sender<u64>,
    /// Wakes paused runs when viewers move.
    throttle: Condvar,
}

impl Shared {
    fn bump(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

pub struct Stream {
    shared: Arc<Shared>,
}

/// What a request for a segment found.
enum Poll {
    Ready(Bytes),
    Wait,
}

impl Stream {
    pub(crate) fn new(
        name: String,
        source: Source,
        settings: crate::config::EncoderSettings,
        limits: Limits,
    ) -> Stream {
        let (changed, _) = watch::channel(0);
        Stream {
            shared: Arc::new(Shared {
                name,
                source,
                settings,
                limits,
                state: Mutex::new(State {
                    probing: Probing::Pending,
                    ring: Ring::new(limits.memory),
                    runs: Vec::new(),
                    viewers: Viewers::default(),
                    next_run_id: 0,
                    segments_made: 0,
                }),
                changed,
                throttle: Condvar::new(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Probes the source and makes the plan; then starts a run at the beginning, since that is
    /// where players start. Blocking (GStreamer): call off the async runtime.
    pub(crate) fn prepare(&self) {
        let target = self.shared.settings.segment;
        let probed = match self.shared.limits.mode {
            PlaylistMode::Event => Ok(Plan::new(target, None)),
            PlaylistMode::Vod => {
                crate::transcode::probe(&self.shared.source).map(|p| Plan::new(target, p.duration))
            }
        };
        {
            let mut state = self.shared.state.lock();
            match probed {
                Ok(plan) => {
                    tracing::info!(
                        stream = %self.shared.name,
                        playlist = if plan.is_vod() { "vod" } else { "event" },
                        segments = plan.count(),
                        "stream opened"
                    );
                    state.probing = Probing::Ready(plan);
                    state.viewers.touch(0, SEEK_DISTANCE, Instant::now());
                    start_run(&self.shared, &mut state, 0);
                }
                Err(err) => {
                    tracing::warn!(stream = %self.shared.name, "cannot open stream: {err}");
                    state.probing = Probing::Failed(err);
                }
            }
        }
        self.shared.bump();
    }

    /// True when the stream cannot produce anything, so a new request should start afresh.
    pub(crate) fn failed(&self) -> bool {
        let state = self.shared.state.lock();
        match &state.probing {
            Probing::Failed(_) => true,
            Probing::Ready(plan) if !plan.is_vod() => state
                .runs
                .first()
                .is_some_and(|r| r.made == 0 && matches!(r.ended, Some((_, Err(_))))),
            _ => false,
        }
    }

    /// Waits until a playlist can be written: the plan is known, and for EVENT playlists the
    /// first segments exist or the stream ended. Reports why not otherwise.
    pub async fn wait_ready(&self) -> Result<(), StreamError> {
        let deadline = tokio::time::Instant::now() + PLAYLIST_WAIT;
        let mut changed = self.shared.changed.subscribe();
        {
            // A VOD viewer starts at the beginning; an EVENT viewer follows the newest segment,
            // so each playlist poll lets the transcode run on by the read-ahead.
            let mut state = self.shared.state.lock();
            let vod = state
                .plan()
                .map_or(self.shared.limits.mode == PlaylistMode::Vod, Plan::is_vod);
            let at = if vod {
                0
            } else {
                state.runs.first().map_or(0, |r| r.next)
            };
            state.viewers.touch(at, SEEK_DISTANCE, Instant::now());
        }
        self.shared.throttle.notify_all();
        loop {
            changed.borrow_and_update();
            if self.ready()? {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(StreamError::NotReady),
            }
        }
    }

    fn ready(&self) -> Result<bool, StreamError> {
        let state = self.shared.state.lock();
        let plan = match &state.probing {
            Probing::Pending => return Ok(false),
            Probing::Failed(err) => return Err(err.clone().into()),
            Probing::Ready(plan) => plan,
        };
        if plan.is_vod() {
            return Ok(true);
        }
        let Some(run) = state.runs.first() else {
            return Ok(false);
        };
        match &run.ended {
            Some((_, Err(err))) if run.made == 0 => Err(err.clone().into()),
            Some(_) => Ok(true),
            None => Ok(run.made >= READY_SEGMENTS),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.shared.state.lock();
        let Some(plan) = state.plan() else {
            return Snapshot {
                vod: false,
                target_duration: self.shared.settings.segment.as_secs_f64().ceil() as u64,
                first_sequence: 0,
                segments: Vec::new(),
                ended: false,
            };
        };
        if plan.is_vod() {
            let count = plan.count().unwrap_or(0);
            return Snapshot {
                vod: true,
                target_duration: plan.target_duration_secs(),
                first_sequence: 0,
                segments: (0..count)
                    .filter_map(|k| Some((k, plan.duration_of(k)?)))
                    .collect(),
                ended: true,
            };
        }
        let first = state.ring.first().unwrap_or(0);
        Snapshot {
            vod: false,
            target_duration: plan.target_duration_secs(),
            first_sequence: first,
            segments: state
                .ring
                .run_from(first)
                .map(|(k, s)| (k, s.duration))
                .collect(),
            ended: state.runs.first().is_some_and(|r| r.ended.is_some()),
        }
    }

    /// Segment `k`: from memory, after waiting for a run about to make it, or from a new run.
    pub async fn segment(&self, k: u64) -> Result<Bytes, StreamError> {
        let deadline = tokio::time::Instant::now() + SEGMENT_WAIT;
        let mut changed = self.shared.changed.subscribe();
        {
            let mut state = self.shared.state.lock();
            state.viewers.touch(k, SEEK_DISTANCE, Instant::now());
        }
        self.shared.throttle.notify_all();
        loop {
            changed.borrow_and_update();
            if let Poll::Ready(bytes) = self.poll_segment(k)? {
                return Ok(bytes);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(StreamError::NotReady),
            }
        }
    }

    fn poll_segment(&self, k: u64) -> Result<Poll, StreamError> {
        let mut state = self.shared.state.lock();
        let plan = match &state.probing {
            Probing::Pending => return Ok(Poll::Wait),
            Probing::Failed(err) => return Err(err.clone().into()),
            Probing::Ready(plan) => plan.clone(),
        };
        if let Some(stored) = state.ring.get(k) {
            return Ok(Poll::Ready(stored.bytes.clone()));
        }
        let now = Instant::now();
        if !plan.is_vod() {
            return event_poll(&state, k);
        }
        if plan.count().is_some_and(|count| k >= count) {
            return Err(StreamError::NoSuchSegment);
        }
        if state.runs.iter().any(|r| r.running() && r.covers(k)) {
            return Ok(Poll::Wait);
        }
        // A run that already went past `k`'s start and ended tells what `k` is.
        for run in &state.runs {
            let Some((at, result)) = &run.ended else {
                continue;
            };
            if run.start > k
                || run.next > k
                || now.saturating_duration_since(*at) > FAILED_RUN_MEMORY
            {
                continue;
            }
            match result {
                // The media ended before the plan did (its duration was overstated).
                Ok(()) => return Err(StreamError::NoSuchSegment),
                Err(err) if run.made == 0 => return Err(err.clone().into()),
                Err(_) => return Err(StreamError::NoSuchSegment),
            }
        }
        start_run(&self.shared, &mut state, k);
        Ok(Poll::Wait)
    }

    pub fn status(&self) -> Status {
        let state = self.shared.state.lock();
        Status {
            segments_held: state.ring.len(),
            bytes_held: state.ring.bytes(),
            runs_running: state.runs.iter().filter(|r| r.running()).count(),
            runs_started: state.next_run_id,
            segments_made: state.segments_made,
        }
    }
}

fn event_poll(state: &State, k: u64) -> Result<Poll, StreamError> {
    if state.ring.first().is_some_and(|first| k < first) {
        return Err(StreamError::Evicted(k));
    }
    let Some(run) = state.runs.first() else {
        return Ok(Poll::Wait);
    };
    match &run.ended {
        Some((_, Err(err))) if run.made == 0 => Err(err.clone().into()),
        Some(_) => Err(StreamError::NoSuchSegment),
        None if k >= run.next.saturating_add(SEGMENT_WAIT_AHEAD) => Err(StreamError::NoSuchSegment),
        None => Ok(Poll::Wait),
    }
}

/// Starts a run at segment `k`, stopping the least needed one if the stream has too many.
fn start_run(shared: &Arc<Shared>, state: &mut State, k: u64) {
    let now = Instant::now();
    state.runs.retain(|r| {
        r.running()
            || r.ended
                .as_ref()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) < FAILED_RUN_MEMORY)
    });
    let running = state.runs.iter().filter(|r| r.running()).count();
    if running >= MAX_RUNS {
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
    let Some(plan) = state.plan().cloned() else {
        return;
    };
    let id = state.next_run_id;
    state.next_run_id += 1;
    state.runs.push(Run {
        id,
        start: k,
        next: k,
        made: 0,
        transcode: None,
        cancelled: false,
        ended: None,
        idle_since: None,
    });
    tracing::debug!(stream = %shared.name, run = id, segment = k, "starting run");
    let output: Arc<dyn Output> = Arc::new(Feed {
        shared: Arc::downgrade(shared),
        run: id,
    });
    let (source, settings, at) = (
        shared.source.clone(),
        shared.settings.clone(),
        plan.start_of(k),
    );
    let weak = Arc::downgrade(shared);
    // Building and prerolling a pipeline blocks; never on the async runtime.
    let spawned = std::thread::Builder::new()
        .name("hlss-start".into())
        .spawn(move || {
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Transcode::start(&source, &settings, at, output.clone())
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
    }
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
                    bytes: segment.bytes,
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
            let Some(run) = state.run_mut(self.run) else {
                return;
            };
            match &result {
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

impl Drop for Stream {
    fn drop(&mut self) {
        let transcodes: Vec<Transcode> = {
            let mut state = self.shared.state.lock();
            state.runs.iter_mut().filter_map(Run::cancel).collect()
        };
        // Paused runs wait on the condvar; wake them so their pipelines can stop.
        self.shared.throttle.notify_all();
        drop(transcodes);
    }
}
