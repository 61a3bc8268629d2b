//! The stream's decisions as a pure state machine: events in, actions out; no GStreamer, tokio, threads or clock.
//!
//! Everything a stream decides lives here: which run (pipeline) makes which segment, when a run
//! starts, pauses, resumes or stops, what is evicted, what a request waits for and for how long,
//! and where the media ends. The owner feeds it [`Event`]s stamped with the time (any monotonic
//! epoch) and carries out the [`Action`]s it returns; `stream/mod.rs` does that with GStreamer
//! and tokio, `stream/sim.rs` with a fake transcoder in simulated time.
//!
//! # Guarantees
//! - A request for a segment the plan lists is answered with that segment as soon as a run makes
//!   it; if no run will, one is started there (stopping the least useful run of this stream when
//!   it has [`MAX_RUNS`] or no transcode place is free), and a paused run the request waits on is
//!   resumed.
//! - A VOD segment is "past the end of the media" only once a run reached the end of the file
//!   before it ([`Event::Ended`] with `Ok` from a run that was not stopped). A stopped or failed
//!   run says nothing about the segments it did not make.
//! - A request is answered with an error only when: the source cannot be read or probed; runs
//!   failed [`MAX_ATTEMPTS`] times in a row at that segment; no transcode place came free within
//!   [`PLACE_WAIT`] (busy); or the answer took longer than [`SEGMENT_WAIT`].
//! - Held bytes stay within the stream's budget and the server's (see [`Ring`]); a run nobody
//!   needs for [`RUN_IDLE`] stops; a stream never runs more than [`MAX_RUNS`] pipelines nor takes
//!   a run without a [`Permit`].

use std::collections::BTreeMap;
use std::time::Duration;

use super::budget::{Budget, Cost, Permit};
use super::plan::Plan;
use super::ring::{Eviction, Payload, Ring, Stored};
use super::viewers::{SessionId, Time, Viewers};
use super::{Snapshot, Status, StreamError};
use crate::config::{PlaylistMode, StreamLimits};
use crate::transcode::TranscodeError;

/// A request this many segments or fewer past a run's next segment waits for that run instead of
/// starting another (a new run costs about as much as transcoding a few segments).
pub const SEEK_DISTANCE: u64 = 4;
/// Most runs one stream has at once.
pub const MAX_RUNS: usize = 3;
/// A VOD run that no viewer and no request has needed for this long is stopped.
pub const RUN_IDLE: Duration = Duration::from_secs(10);
/// Longest a segment request waits for its segment.
pub const SEGMENT_WAIT: Duration = Duration::from_secs(30);
/// Longest a playlist request waits for the probe (VOD) or the first segments (EVENT).
pub const PLAYLIST_WAIT: Duration = Duration::from_secs(30);
/// Longest a request waits for a transcode place before it is answered "busy".
pub const PLACE_WAIT: Duration = Duration::from_secs(6);
/// Runs that fail at the same segment this many times in a row make its requests fail.
pub const MAX_ATTEMPTS: u32 = 3;
/// How long such a failure is remembered before a request may try again.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(10);
/// Segments a first EVENT playlist request waits for (players want three to start).
pub const READY_SEGMENTS: u64 = 3;
/// EVENT playlists: how far past the newest segment a request may ask and still wait.
pub const SEGMENT_WAIT_AHEAD: u64 = 3;

/// A run (one pipeline), numbered by the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(pub u64);

/// A waiting request, numbered by the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// What happens to a stream.
#[derive(Debug)]
pub enum Event<B> {
    /// The source was probed: its plan and what its runs cost, or why it cannot be played.
    Probed(Result<(Plan, Cost), TranscodeError>),
    /// A viewer asks for the playlist.
    Playlist {
        request: RequestId,
        session: Option<SessionId>,
        client: u64,
    },
    /// A viewer asks for segment `k`.
    Segment {
        request: RequestId,
        k: u64,
        session: Option<SessionId>,
    },
    /// The requester went away before its answer.
    Cancelled(RequestId),
    /// Run `run` made its `sequence`-th segment (0 is the one it started at).
    Produced {
        run: RunId,
        sequence: u64,
        duration: Duration,
        body: B,
    },
    /// Run `run` ended: `Ok` when it reached the end of the media.
    Ended {
        run: RunId,
        result: Result<(), TranscodeError>,
    },
    /// Time passed.
    Tick,
    /// Stop every run (the stream is closing or gives its places to another stream).
    StopAll,
    /// Another stream waits for a transcode place: give up one run that no request waits on
    /// and no viewer watches.
    GiveUpPlace,
}

/// What the owner must do.
#[derive(Debug)]
pub enum Action<B> {
    /// Start a pipeline at media time `at`, the start of segment `k`, on a plan whose first
    /// segment starts at `origin`; `None` for an EVENT stream, never probed, whose one run
    /// finds the origin itself.
    Start {
        run: RunId,
        k: u64,
        at: Duration,
        origin: Option<Duration>,
    },
    /// Hold the run after the segment it is making now.
    Pause(RunId),
    Resume(RunId),
    /// Stop the pipeline; anything it still reports is ignored.
    Stop(RunId),
    Answer {
        request: RequestId,
        reply: Reply<B>,
    },
}

#[derive(Debug)]
pub enum Reply<B> {
    /// The playlist can be written (from [`Machine::snapshot`]) for this session.
    Playlist(SessionId),
    Segment(B),
    Failed(StreamError),
}

enum Probing {
    Pending,
    Ready(Plan),
    Failed(TranscodeError),
}

#[derive(Debug)]
struct Run {
    id: RunId,
    start: u64,
    /// The segment it makes next.
    next: u64,
    made: u64,
    /// Its place under `--max-transcodes`; given back when the run leaves the machine.
    _permit: Permit,
    paused: bool,
    /// Start of its current work (start, resume, or last segment): for the real-time factor.
    working_since: Time,
    /// Since when no viewer and no request has needed it.
    unneeded_since: Option<Time>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Playlist(SessionId),
    Segment(u64),
}

impl Want {
    /// The segment the request needs made: a VOD player opening the playlist starts at 0.
    fn segment(self) -> u64 {
        match self {
            Want::Playlist(_) => 0,
            Want::Segment(k) => k,
        }
    }
}

#[derive(Debug)]
struct Pending {
    id: RequestId,
    want: Want,
    since: Time,
    /// Since when it has needed a run that could not get a transcode place.
    no_place_since: Option<Time>,
}

#[derive(Debug, Clone)]
struct Failure {
    attempts: u32,
    error: TranscodeError,
    at: Time,
}

/// How an EVENT stream's single run ended.
#[derive(Debug, Clone)]
enum EventEnd {
    /// It reached the end of the media.
    Complete,
    Failed {
        next: u64,
        error: TranscodeError,
    },
    /// It was stopped: the stream can make nothing more.
    Stopped,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    runs_started: u64,
    segments_made: u64,
    segments_served: u64,
    made_media: Duration,
    made_busy: Duration,
}

pub struct Machine<B> {
    limits: StreamLimits,
    budget: Budget,
    probing: Probing,
    ring: Ring<B>,
    runs: Vec<Run>,
    viewers: Viewers,
    pending: Vec<Pending>,
    /// What each run costs (known from the probe).
    cost: Cost,
    /// A viewer opened the playlist: players start at the beginning, so its run starts now,
    /// before the player asks for segment 0 (a direct stream answers the playlist at once).
    start_wanted: bool,
    /// VOD: no media from this segment on (a run reached the end of the file there).
    media_end: Option<u64>,
    /// VOD: segments at which runs failed.
    failures: BTreeMap<u64, Failure>,
    event_end: Option<EventEnd>,
    next_run: u64,
    last_request: Time,
    counters: Counters,
}

impl<B: Payload> Machine<B> {
    pub fn new(limits: StreamLimits, budget: Budget, now: Time) -> Self {
        Machine {
            ring: Ring::new(limits.memory, budget.clone()),
            limits,
            budget,
            probing: Probing::Pending,
            runs: Vec::new(),
            viewers: Viewers::default(),
            pending: Vec::new(),
            cost: Cost::Transcode,
            start_wanted: false,
            media_end: None,
            failures: BTreeMap::new(),
            event_end: None,
            next_run: 0,
            last_request: now,
            counters: Counters::default(),
        }
    }

    /// Takes one event; returns what to do, in order.
    pub fn handle(&mut self, now: Time, event: Event<B>) -> Vec<Action<B>> {
        let mut out = Vec::new();
        match event {
            Event::Probed(result) => self.probed(result),
            Event::Playlist {
                request,
                session,
                client,
            } => self.playlist(now, request, session, client),
            Event::Segment {
                request,
                k,
                session,
            } => {
                self.last_request = now;
                self.viewers.touch(session, k, SEEK_DISTANCE, now);
                self.pending.push(Pending {
                    id: request,
                    want: Want::Segment(k),
                    since: now,
                    no_place_since: None,
                });
            }
            Event::Cancelled(request) => self.pending.retain(|p| p.id != request),
            Event::Produced {
                run,
                sequence,
                duration,
                body,
            } => self.produced(now, run, sequence, duration, body, &mut out),
            Event::Ended { run, result } => self.ended(now, run, result),
            Event::Tick => {}
            // An EVENT stream's run cannot start again mid-way: it keeps its place.
            Event::GiveUpPlace if self.is_event() => {}
            Event::GiveUpPlace => {
                // Only a spare run: a paused one still serves a viewer who is watching.
                let spare = self
                    .runs
                    .iter()
                    .filter(|r| !self.awaited(r) && self.furthest_viewer(r, now).is_none())
                    .map(|r| r.id)
                    .next();
                if let Some(id) = spare {
                    tracing::debug!(run = id.0, "giving a transcode place to another stream");
                    self.stop_run(id, &mut out);
                }
            }
            Event::StopAll => {
                for run in std::mem::take(&mut self.runs) {
                    out.push(Action::Stop(run.id));
                }
                if self.is_event() && self.event_end.is_none() {
                    self.event_end = Some(EventEnd::Stopped);
                }
            }
        }
        self.settle(now, &mut out);
        out
    }

    fn plan(&self) -> Option<&Plan> {
        match &self.probing {
            Probing::Ready(plan) => Some(plan),
            _ => None,
        }
    }

    /// An EVENT stream: its playlist grows from one run that starts at the beginning.
    fn is_event(&self) -> bool {
        match self.plan() {
            Some(plan) => !plan.is_vod(),
            None => self.limits.mode == PlaylistMode::Event,
        }
    }

    fn probed(&mut self, result: Result<(Plan, Cost), TranscodeError>) {
        if !matches!(self.probing, Probing::Pending) {
            return;
        }
        self.probing = match result {
            Ok((plan, cost)) => {
                self.cost = cost;
                Probing::Ready(plan)
            }
            Err(error) => Probing::Failed(error),
        };
    }

    fn playlist(&mut self, now: Time, request: RequestId, asked: Option<SessionId>, client: u64) {
        self.last_request = now;
        // A VOD viewer starts at the beginning; an EVENT viewer follows the newest segment, so
        // each playlist poll lets the run go on by the read-ahead.
        let at = if self.is_event() {
            self.runs.first().map_or(0, |r| r.next)
        } else {
            0
        };
        // A player reloading its playlist mid-watch needs no run at the beginning.
        self.start_wanted |= !self.viewers.knows(asked, client, now);
        let session = self.viewers.join(asked, client, at, now);
        if self.is_event() {
            self.viewers.touch(Some(session), at, SEEK_DISTANCE, now);
        }
        self.pending.push(Pending {
            id: request,
            want: Want::Playlist(session),
            since: now,
            no_place_since: None,
        });
    }

    fn produced(
        &mut self,
        now: Time,
        id: RunId,
        sequence: u64,
        duration: Duration,
        body: B,
        out: &mut Vec<Action<B>>,
    ) {
        let Some(run) = self.runs.iter_mut().find(|r| r.id == id) else {
            // A run that was stopped may still deliver what it was making.
            return;
        };
        let k = run.start.saturating_add(sequence);
        if k < run.next {
            return;
        }
        run.next = k.saturating_add(1);
        run.made += 1;
        self.counters.made_media += duration;
        self.counters.made_busy += now.saturating_sub(run.working_since);
        run.working_since = now;
        let planned = self.plan().and_then(Plan::count);
        if planned.is_some_and(|count| k >= count) {
            // The media is longer than its plan said: nobody can ask for this.
            self.stop_run(id, out);
            return;
        }
        self.counters.segments_made += 1;
        if self.media_end.is_some_and(|end| k >= end) {
            // A run that reports the end of the media without having covered it (some demuxers
            // end a seek past a damaged part that way) is contradicted by this one.
            self.media_end = None;
        }
        self.pending.retain(|p| {
            if p.want == Want::Segment(k) {
                out.push(Action::Answer {
                    request: p.id,
                    reply: Reply::Segment(body.clone()),
                });
                false
            } else {
                true
            }
        });
        let eviction = if self.is_event() {
            Eviction::Oldest
        } else {
            Eviction::Viewers {
                read_ahead: self.limits.read_ahead,
            }
        };
        let positions = self.viewers.positions(now);
        self.ring
            .insert(k, Stored { duration, body }, eviction, &positions);
        self.failures.remove(&k);
        if self.overtaken(id) {
            self.stop_run(id, out);
        }
    }

    /// Whether run `id` would only make again what another run made or is about to make.
    fn overtaken(&self, id: RunId) -> bool {
        let Some(run) = self.runs.iter().find(|r| r.id == id) else {
            return false;
        };
        self.runs.iter().any(|other| {
            other.id != id
                && ((other.next == run.next && other.id < id)
                    || (other.start <= run.next
                        && run.next < other.next
                        && self.ring.contains(run.next)))
        })
    }

    fn ended(&mut self, now: Time, id: RunId, result: Result<(), TranscodeError>) {
        let Some(index) = self.runs.iter().position(|r| r.id == id) else {
            return;
        };
        let run = self.runs.remove(index);
        if self.is_event() {
            self.event_end = Some(match result {
                Ok(()) => EventEnd::Complete,
                Err(error) => EventEnd::Failed {
                    next: run.next,
                    error,
                },
            });
            return;
        }
        match result {
            Ok(()) => {
                let planned = self.plan().and_then(Plan::count);
                if planned.is_some_and(|count| run.next < count) {
                    tracing::warn!(
                        segments = run.next,
                        planned,
                        "the media ended before its announced duration (truncated or damaged); \
                         later segments are 404"
                    );
                }
                self.media_end = Some(self.media_end.map_or(run.next, |e| e.min(run.next)));
            }
            Err(error) => {
                tracing::warn!(run = id.0, at = run.next, "run failed: {error}");
                let failure = self.failures.entry(run.next).or_insert(Failure {
                    attempts: 0,
                    error: error.clone(),
                    at: now,
                });
                failure.attempts += 1;
                failure.error = error;
                failure.at = now;
            }
        }
    }

    /// Answers what can be answered, starts the runs that pending requests need, pauses and
    /// resumes runs, stops idle ones. Runs after every event.
    fn settle(&mut self, now: Time, out: &mut Vec<Action<B>>) {
        self.failures
            .retain(|_, f| now.saturating_sub(f.at) < FAILURE_MEMORY);
        self.answer_ready(now, out);
        if matches!(self.probing, Probing::Ready(_)) {
            if self.is_event() {
                self.settle_event(now, out);
            } else {
                self.settle_vod(now, out);
            }
        }
        // Starting a run may have answered nothing yet, but waiting for a place may have timed out.
        self.answer_ready(now, out);
    }

    fn answer_ready(&mut self, now: Time, out: &mut Vec<Action<B>>) {
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            match self.resolve(&p, now) {
                Some(reply) => {
                    if matches!(reply, Reply::Segment(_)) {
                        self.counters.segments_served += 1;
                    }
                    out.push(Action::Answer {
                        request: p.id,
                        reply,
                    });
                }
                None => self.pending.push(p),
            }
        }
    }

    /// The answer for `p` if it can be given now.
    fn resolve(&self, p: &Pending, now: Time) -> Option<Reply<B>> {
        let waited = now.saturating_sub(p.since);
        let plan = match &self.probing {
            Probing::Failed(error) => return Some(Reply::Failed(error.clone().into())),
            Probing::Pending => {
                let limit = match p.want {
                    Want::Playlist(_) => PLAYLIST_WAIT,
                    Want::Segment(_) => SEGMENT_WAIT,
                };
                return (waited >= limit).then_some(Reply::Failed(StreamError::NotReady));
            }
            Probing::Ready(plan) => plan,
        };
        let (found, limit) = match p.want {
            Want::Playlist(session) if plan.is_vod() => (self.vod_playlist(session), PLAYLIST_WAIT),
            Want::Playlist(session) => (self.event_playlist(session), PLAYLIST_WAIT),
            Want::Segment(k) => match self.ring.get(k) {
                Some(stored) => (Some(Reply::Segment(stored.body.clone())), SEGMENT_WAIT),
                None if plan.is_vod() => (self.vod_segment(plan, k), SEGMENT_WAIT),
                None => (self.event_segment(k), SEGMENT_WAIT),
            },
        };
        if found.is_some() {
            return found;
        }
        if p.no_place_since
            .is_some_and(|since| now.saturating_sub(since) >= PLACE_WAIT)
        {
            return Some(Reply::Failed(StreamError::Busy(
                self.budget.max_transcodes(),
            )));
        }
        (waited >= limit).then_some(Reply::Failed(StreamError::NotReady))
    }

    /// A VOD playlist lists what the plan says; it is answered once the stream can make its
    /// segments: a direct stream at once, a transcoded one once a run has a place, so that under
    /// real overload the player learns it from the playlist (503), not from a segment.
    fn vod_playlist(&self, session: SessionId) -> Option<Reply<B>> {
        let placed = self.cost == Cost::Direct || !self.runs.is_empty() || self.ring.contains(0);
        placed.then_some(Reply::Playlist(session))
    }

    fn vod_segment(&self, plan: &Plan, k: u64) -> Option<Reply<B>> {
        let past_plan = plan.count().is_some_and(|count| k >= count);
        let past_media = self.media_end.is_some_and(|end| k >= end);
        if past_plan || past_media {
            return Some(Reply::Failed(StreamError::NoSuchSegment));
        }
        self.failures
            .get(&k)
            .filter(|f| f.attempts >= MAX_ATTEMPTS)
            .map(|f| Reply::Failed(f.error.clone().into()))
    }

    fn event_playlist(&self, session: SessionId) -> Option<Reply<B>> {
        match &self.event_end {
            Some(EventEnd::Failed { next: 0, error }) => {
                return Some(Reply::Failed(error.clone().into()));
            }
            Some(EventEnd::Stopped) => return Some(Reply::Failed(StreamError::NotReady)),
            Some(_) => return Some(Reply::Playlist(session)),
            None => {}
        }
        let made = self.runs.first().map_or(0, |r| r.made);
        (made >= READY_SEGMENTS).then_some(Reply::Playlist(session))
    }

    fn event_segment(&self, k: u64) -> Option<Reply<B>> {
        if self.ring.first().is_some_and(|first| k < first) {
            return Some(Reply::Failed(StreamError::Evicted(k)));
        }
        match &self.event_end {
            Some(EventEnd::Failed { next: 0, error }) => Some(Reply::Failed(error.clone().into())),
            Some(EventEnd::Stopped) => Some(Reply::Failed(StreamError::NotReady)),
            Some(EventEnd::Complete | EventEnd::Failed { .. }) => {
                Some(Reply::Failed(StreamError::NoSuchSegment))
            }
            None => {
                let next = self.runs.first().map_or(0, |r| r.next);
                (k >= next.saturating_add(SEGMENT_WAIT_AHEAD))
                    .then_some(Reply::Failed(StreamError::NoSuchSegment))
            }
        }
    }

    fn settle_vod(&mut self, now: Time, out: &mut Vec<Action<B>>) {
        // A viewer opening the playlist starts at the beginning: its run starts now.
        let mut wanted: Vec<u64> = self.pending.iter().map(|p| p.want.segment()).collect();
        if std::mem::take(&mut self.start_wanted) {
            wanted.push(0);
        }
        wanted.retain(|k| !self.ring.contains(*k));
        wanted.sort_unstable();
        wanted.dedup();
        for k in wanted {
            if self
                .runs
                .iter()
                .any(|r| r.next <= k && k <= r.next + SEEK_DISTANCE)
            {
                continue;
            }
            let placed = self.start_run(k, now, out);
            for p in &mut self.pending {
                if p.want.segment() == k {
                    p.no_place_since = if placed {
                        None
                    } else {
                        p.no_place_since.or(Some(now))
                    };
                }
            }
        }
        self.throttle(now, out);
    }

    fn settle_event(&mut self, now: Time, out: &mut Vec<Action<B>>) {
        if self.runs.is_empty() && self.event_end.is_none() {
            let placed = self.start_run(0, now, out);
            for p in &mut self.pending {
                p.no_place_since = if placed {
                    None
                } else {
                    p.no_place_since.or(Some(now))
                };
            }
        }
        self.throttle(now, out);
    }

    /// Starts a run at `k`, making room for it if needed. False when no place could be had.
    fn start_run(&mut self, k: u64, now: Time, out: &mut Vec<Action<B>>) -> bool {
        let Some((at, origin)) = self
            .plan()
            .map(|plan| (plan.start_of(k), plan.is_vod().then(|| plan.origin())))
        else {
            return false;
        };
        let mut permit = self.budget.try_place(self.cost);
        if (permit.is_none() || self.runs.len() >= MAX_RUNS)
            && let Some(victim) = self.victim(k, now)
        {
            self.stop_run(victim, out);
            permit = permit.or_else(|| self.budget.try_place(self.cost));
        }
        let Some(permit) = permit.filter(|_| self.runs.len() < MAX_RUNS) else {
            return false;
        };
        let id = RunId(self.next_run);
        self.next_run += 1;
        self.counters.runs_started += 1;
        self.runs.push(Run {
            id,
            start: k,
            next: k,
            made: 0,
            _permit: permit,
            paused: false,
            working_since: now,
            unneeded_since: None,
        });
        out.push(Action::Start {
            run: id,
            k,
            at,
            origin,
        });
        true
    }

    /// The run to give up for a new one at `k`: never one a request waits on; else one nobody
    /// watches, then a paused one, then the furthest from `k`.
    fn victim(&self, k: u64, now: Time) -> Option<RunId> {
        self.runs
            .iter()
            .filter(|r| !self.awaited(r))
            .max_by_key(|r| {
                let watched = self.furthest_viewer(r, now).is_some();
                (!watched, r.paused, r.start.abs_diff(k))
            })
            .map(|r| r.id)
    }

    /// Whether a pending request waits on `run`.
    fn awaited(&self, run: &Run) -> bool {
        let reach = if self.is_event() {
            SEGMENT_WAIT_AHEAD
        } else {
            SEEK_DISTANCE
        };
        self.pending.iter().any(|p| match p.want {
            Want::Segment(k) => run.next <= k && k <= run.next + reach,
            Want::Playlist(_) => self.is_event(),
        })
    }

    /// The furthest viewer that will come to `run`'s segments by playing on: one between its
    /// start and its next segment with nothing missing in between, or just ahead of it.
    fn furthest_viewer(&self, run: &Run, now: Time) -> Option<u64> {
        self.viewers
            .positions(now)
            .into_iter()
            .filter(|&p| {
                if self.is_event() {
                    return true;
                }
                p <= run.next + SEEK_DISTANCE
                    && (p >= run.next || (p >= run.start && self.ring.holds_all(p + 1..run.next)))
            })
            .max()
    }

    /// Pauses runs far enough ahead of their viewers, resumes those someone waits on, and stops
    /// VOD runs nobody has needed for [`RUN_IDLE`].
    fn throttle(&mut self, now: Time, out: &mut Vec<Action<B>>) {
        let read_ahead = self.limits.read_ahead;
        let mut idle = Vec::new();
        let decisions: Vec<(RunId, bool, bool)> = self
            .runs
            .iter()
            .map(|run| {
                let viewer = self.furthest_viewer(run, now);
                let awaited = self.awaited(run);
                let wanted =
                    awaited || viewer.is_some_and(|p| run.next <= p.saturating_add(read_ahead));
                (run.id, wanted, awaited || viewer.is_some())
            })
            .collect();
        for (id, wanted, served) in decisions {
            let event = self.is_event();
            let Some(run) = self.runs.iter_mut().find(|r| r.id == id) else {
                continue;
            };
            if wanted && run.paused {
                run.paused = false;
                run.working_since = now;
                out.push(Action::Resume(id));
            } else if !wanted && !run.paused {
                run.paused = true;
                out.push(Action::Pause(id));
            }
            run.unneeded_since = if served {
                None
            } else {
                run.unneeded_since.or(Some(now))
            };
            // An EVENT stream cannot start its run again mid-way: it only pauses.
            if !event
                && run
                    .unneeded_since
                    .is_some_and(|since| now.saturating_sub(since) >= RUN_IDLE)
            {
                idle.push(id);
            }
        }
        for id in idle {
            tracing::debug!(run = id.0, "stopping run: no viewer needs it");
            self.stop_run(id, out);
        }
    }

    fn stop_run(&mut self, id: RunId, out: &mut Vec<Action<B>>) {
        if let Some(index) = self.runs.iter().position(|r| r.id == id) {
            self.runs.remove(index);
            out.push(Action::Stop(id));
        }
    }

    /// True when the stream can make nothing more, so a new request should open it afresh.
    pub fn dead(&self) -> bool {
        match &self.probing {
            Probing::Failed(_) => true,
            Probing::Ready(plan) if !plan.is_vod() => matches!(
                self.event_end,
                Some(EventEnd::Stopped | EventEnd::Failed { next: 0, .. })
            ),
            _ => false,
        }
    }

    /// How long since a viewer last asked anything; zero while a request waits.
    pub fn idle(&self, now: Time) -> Duration {
        if self.pending.is_empty() {
            now.saturating_sub(self.last_request)
        } else {
            Duration::ZERO
        }
    }

    /// True while a request waits for a run that has no transcode place.
    pub fn wants_place(&self) -> bool {
        self.pending.iter().any(|p| p.no_place_since.is_some())
    }

    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    pub fn snapshot(&self, default_target: Duration) -> Snapshot {
        let Some(plan) = self.plan() else {
            return Snapshot {
                vod: false,
                target_duration: default_target.as_secs_f64().ceil() as u64,
                first_sequence: 0,
                segments: Vec::new(),
                ended: false,
            };
        };
        if plan.is_vod() {
            return Snapshot::of_plan(plan);
        }
        let first = self.ring.first().unwrap_or(0);
        Snapshot {
            vod: false,
            target_duration: plan.target_duration_secs(),
            first_sequence: first,
            segments: self
                .ring
                .run_from(first)
                .map(|(k, s)| (k, s.duration))
                .collect(),
            ended: self.event_end.is_some(),
        }
    }

    pub fn status(&self, now: Time) -> Status {
        let busy = self.counters.made_busy.as_secs_f64();
        Status {
            segments_held: self.ring.len(),
            bytes_held: self.ring.bytes(),
            runs_running: self.runs.len(),
            runs_started: self.counters.runs_started,
            segments_made: self.counters.segments_made,
            segments_served: self.counters.segments_served,
            realtime_factor: if busy > 0.0 {
                self.counters.made_media.as_secs_f64() / busy
            } else {
                0.0
            },
            viewers: self.viewers.list(now),
            idle: self.idle(now),
            delivery: None,
        }
    }
}

/// What the simulation checks between events.
#[cfg(test)]
impl<B: Payload> Machine<B> {
    /// Pending segment requests with a run that will make them, or waiting for a place.
    pub(super) fn stuck_requests(&self) -> Vec<u64> {
        let Some(plan) = self.plan() else {
            return Vec::new();
        };
        if !plan.is_vod() {
            let running = self.runs.first().is_some_and(|r| !r.paused);
            return self
                .pending
                .iter()
                .filter_map(|p| match p.want {
                    Want::Segment(k) if !running && self.event_end.is_none() => Some(k),
                    _ => None,
                })
                .collect();
        }
        self.pending
            .iter()
            .filter_map(|p| match p.want {
                Want::Segment(k) => Some((k, p.no_place_since.is_some())),
                Want::Playlist(_) => None,
            })
            .filter(|&(k, waiting_for_place)| {
                !waiting_for_place
                    && !self
                        .runs
                        .iter()
                        .any(|r| !r.paused && r.next <= k && k <= r.next + SEEK_DISTANCE)
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// Runs nobody has needed for longer than `limit`: a VOD run should have stopped, an EVENT
    /// run (it cannot restart mid-way) should at least be paused.
    pub(super) fn runs_unneeded_for(&self, now: Time, limit: Duration) -> usize {
        let event = self.is_event();
        self.runs
            .iter()
            .filter(|r| {
                r.unneeded_since
                    .is_some_and(|s| now.saturating_sub(s) > limit)
            })
            .filter(|r| !event || !r.paused)
            .count()
    }

    pub(super) fn bytes_held(&self) -> usize {
        self.ring.bytes()
    }
}
