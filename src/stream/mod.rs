//! One stream's state: its plan, the runs (pipelines) making its segments, its ring and viewers.
//!
//! A VOD stream knows every segment up front ([`Plan`]); a request for segment `k` is answered
//! from the ring, or by waiting for a run that is about to reach `k`, or by starting a run at `k`
//! (a seek). Runs are throttled: one that is more than `read_ahead` segments past the furthest
//! viewer it serves blocks in its output callback, which stalls its pipeline at no CPU cost, and
//! one that nobody has needed for `run::RUN_IDLE` is stopped. An EVENT stream (unknown duration, or
//! `--playlist event`) has a single run from the start and a playlist that grows.

mod budget;
mod plan;
mod registry;
mod ring;
mod run;
mod viewers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

pub use budget::Budget;
pub use plan::Plan;
pub use registry::{Opened, Registry};
pub use ring::Body;
pub use viewers::{SessionId, Viewer};

use crate::config::{PlaylistMode, StreamLimits as Limits};
use crate::library::Source;
use crate::transcode::{Transcode, TranscodeError};
use budget::Permit;
use ring::{Eviction, Ring};
use run::{FAILED_RUN_MEMORY, Run, start_run};
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
    #[error("all {0} transcodes are busy; try again shortly")]
    Busy(usize),
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

/// Figures about one stream, for status pages and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub segments_held: usize,
    pub bytes_held: usize,
    pub runs_running: usize,
    pub runs_started: u64,
    pub segments_made: u64,
    pub segments_served: u64,
    /// Media time made per second of transcoding (pauses excluded); 0 before the first segment.
    pub realtime_factor: f64,
    pub viewers: Vec<Viewer>,
    pub idle: Duration,
}

enum Probing {
    Pending,
    Ready(Plan),
    Failed(TranscodeError),
}

struct State {
    probing: Probing,
    ring: Ring,
    runs: Vec<Run>,
    viewers: Viewers,
    next_run_id: u64,
    /// A transcode place taken when the stream was opened, for its first run.
    reserved: Option<Permit>,
    segments_made: u64,
    segments_served: u64,
    /// Media time made and the transcoding time it took, for the real-time factor.
    made_media: Duration,
    made_busy: Duration,
    last_request: Instant,
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

    /// Whether run `id` should pause: it is far enough past every viewer it serves, or it serves
    /// none (say the viewer who opened the stream at once sought elsewhere): then it would only
    /// take the CPU from the run that viewer now waits on.
    fn should_pause(&self, id: u64, read_ahead: u64, now: Instant) -> bool {
        let Some(run) = self.runs.iter().find(|r| r.id == id) else {
            return false;
        };
        match self
            .viewers
            .furthest_in(run.start..=run.next.saturating_add(SEEK_DISTANCE), now)
        {
            Some(wanted) => run.next > wanted.saturating_add(read_ahead),
            None => true,
        }
    }
}

/// How long a changed file must stay unchanged before its stream is reopened.
const SETTLE: Duration = Duration::from_secs(2);

/// A file's size and modification time: a replaced file differs in at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(source: &Source) -> Option<FileStamp> {
        let Source::File(path) = source else {
            return None;
        };
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// State shared with the runs' threads.
struct Shared {
    name: String,
    source: Source,
    /// The file as it was when the stream opened, to notice it being replaced.
    opened_as: Option<FileStamp>,
    settings: crate::config::EncoderSettings,
    limits: Limits,
    budget: Budget,
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
    Ready(Body),
    Wait,
}

impl Stream {
    pub(crate) fn new(
        name: String,
        source: Source,
        settings: crate::config::EncoderSettings,
        limits: Limits,
        budget: Budget,
    ) -> Stream {
        let (changed, _) = watch::channel(0);
        Stream {
            shared: Arc::new(Shared {
                name,
                opened_as: FileStamp::of(&source),
                source,
                settings,
                limits,
                state: Mutex::new(State {
                    probing: Probing::Pending,
                    ring: Ring::new(limits.memory, budget.clone()),
                    runs: Vec::new(),
                    viewers: Viewers::default(),
                    next_run_id: 0,
                    reserved: None,
                    segments_made: 0,
                    segments_served: 0,
                    made_media: Duration::ZERO,
                    made_busy: Duration::ZERO,
                    last_request: Instant::now(),
                }),
                budget,
                changed,
                throttle: Condvar::new(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Keeps `permit` for the stream's first run.
    pub(crate) fn reserve(&self, permit: Permit) {
        self.shared.state.lock().reserved = Some(permit);
    }

    /// Probes the source and makes the plan; then starts a run at the beginning, since that is
    /// where players start. Blocking (GStreamer): call off the async runtime.
    pub(crate) fn prepare(&self) {
        // Players start at the beginning, and segment 0 needs no plan: its pipeline starts while
        // the probe runs, which takes the probe's time off the wait for the first segment. When
        // every transcode is busy, the first segment request gets the 503 instead.
        {
            let mut state = self.shared.state.lock();
            if let Err(err) = start_run(&self.shared, &mut state, 0) {
                tracing::debug!(stream = %self.shared.name, "not starting at once: {err}");
            }
        }
        let target = self.shared.settings.segment;
        let probed = match self.shared.limits.mode {
            PlaylistMode::Event => Ok(Plan::new(target, Duration::ZERO, None)),
            PlaylistMode::Vod => crate::transcode::probe(&self.shared.source)
                .map(|p| Plan::new(target, p.origin, p.duration)),
        };
        match probed {
            Ok(plan) => {
                tracing::info!(
                    stream = %self.shared.name,
                    playlist = if plan.is_vod() { "vod" } else { "event" },
                    segments = plan.count(),
                    "stream opened"
                );
                self.shared.state.lock().probing = Probing::Ready(plan);
            }
            Err(err) => {
                tracing::warn!(stream = %self.shared.name, "cannot open stream: {err}");
                self.stop_runs();
                let mut state = self.shared.state.lock();
                state.probing = Probing::Failed(err);
                state.reserved = None;
            }
        }
        self.shared.bump();
    }

    /// True when the file was replaced or changed since the stream opened (its plan and segments
    /// no longer describe it) and has not changed for [`SETTLE`] since, so a file still being
    /// written is not reopened on every request.
    pub(crate) fn changed_on_disk(&self) -> bool {
        let now = FileStamp::of(&self.shared.source);
        now != self.shared.opened_as
            && now.is_some_and(|stamp| {
                stamp
                    .modified
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age >= SETTLE)
            })
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

    /// A playlist request: joins (or starts) the viewer's session, then waits until a playlist
    /// can be written: the plan is known, and for EVENT playlists the first segments exist or the
    /// stream ended. `client` identifies the requester (address and user agent, hashed).
    pub async fn open_playlist(
        &self,
        asked: Option<SessionId>,
        client: u64,
    ) -> Result<SessionId, StreamError> {
        let deadline = tokio::time::Instant::now() + PLAYLIST_WAIT;
        let mut changed = self.shared.changed.subscribe();
        let session = {
            // A VOD viewer starts at the beginning; an EVENT viewer follows the newest segment,
            // so each playlist poll lets the transcode run on by the read-ahead.
            let mut state = self.shared.state.lock();
            let now = Instant::now();
            state.last_request = now;
            let vod = state
                .plan()
                .map_or(self.shared.limits.mode == PlaylistMode::Vod, Plan::is_vod);
            let at = if vod {
                0
            } else {
                state.runs.first().map_or(0, |r| r.next)
            };
            let session = state.viewers.join(asked, client, at, now);
            if !vod {
                state.viewers.touch(Some(session), at, SEEK_DISTANCE, now);
            }
            session
        };
        self.shared.throttle.notify_all();
        loop {
            changed.borrow_and_update();
            if self.ready()? {
                return Ok(session);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(StreamError::NotReady),
            }
        }
    }

    fn ready(&self) -> Result<bool, StreamError> {
        let mut state = self.shared.state.lock();
        let plan = match &state.probing {
            Probing::Pending => return Ok(false),
            Probing::Failed(err) => return Err(err.clone().into()),
            Probing::Ready(plan) => plan,
        };
        if plan.is_vod() {
            return Ok(true);
        }
        let Some(run) = state.runs.first() else {
            // The first run could not start (every transcode was busy): try again now.
            start_run(&self.shared, &mut state, 0)?;
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

    /// Segment `k` for `session`: from memory, after waiting for a run about to make it, or from
    /// a new run.
    pub async fn segment(&self, k: u64, session: Option<SessionId>) -> Result<Body, StreamError> {
        let deadline = tokio::time::Instant::now() + SEGMENT_WAIT;
        let mut changed = self.shared.changed.subscribe();
        {
            let mut state = self.shared.state.lock();
            let now = Instant::now();
            state.last_request = now;
            state.viewers.touch(session, k, SEEK_DISTANCE, now);
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
            let bytes = stored.body.clone();
            state.segments_served += 1;
            return Ok(Poll::Ready(bytes));
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
        start_run(&self.shared, &mut state, k)?;
        Ok(Poll::Wait)
    }

    /// How long since a viewer last asked this stream for anything.
    pub fn idle(&self) -> Duration {
        self.shared.state.lock().last_request.elapsed()
    }

    /// Stops every pipeline of the stream (its segments stay); returns how many were running.
    pub fn stop_runs(&self) -> usize {
        let transcodes: Vec<Transcode> = {
            let mut state = self.shared.state.lock();
            state
                .runs
                .iter_mut()
                .filter(|r| r.running())
                .filter_map(Run::cancel)
                .collect()
        };
        self.shared.throttle.notify_all();
        self.shared.bump();
        transcodes.len()
    }

    pub fn status(&self) -> Status {
        let state = self.shared.state.lock();
        let now = Instant::now();
        let busy = state.made_busy.as_secs_f64();
        Status {
            segments_held: state.ring.len(),
            bytes_held: state.ring.bytes(),
            runs_running: state.runs.iter().filter(|r| r.running()).count(),
            runs_started: state.next_run_id,
            segments_made: state.segments_made,
            segments_served: state.segments_served,
            realtime_factor: if busy > 0.0 {
                state.made_media.as_secs_f64() / busy
            } else {
                0.0
            },
            viewers: state.viewers.list(now),
            idle: now.saturating_duration_since(state.last_request),
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
