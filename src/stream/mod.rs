//! One stream: its state machine ([`machine`]) driven by GStreamer runs and tokio requests.
//!
//! Every decision (which run makes which segment, pausing, eviction, what a request waits for,
//! where the media ends) is the machine's; this module only feeds it events and carries out its
//! actions: it starts and stops pipelines ([`run`]), opens and closes the gate a paused run's
//! streaming thread waits at, and hands answers to waiting requests through oneshot channels, so
//! no wake-up can be lost. A VOD stream knows every segment up front ([`Plan`]) and makes them on
//! demand; an EVENT stream (unknown duration, or `--playlist event`) has one run from the start
//! and a playlist that grows.

mod budget;
mod delivery;
mod machine;
mod plan;
mod registry;
mod ring;
mod run;
#[cfg(test)]
mod sim;
mod viewers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

pub use budget::Budget;
pub use delivery::{Delivery, DirectAudio, Reason, describe};
pub use plan::Plan;
pub use registry::{Opened, Registry};
pub use ring::Body;
pub use viewers::{SessionId, Viewer};

use crate::config::{EncoderSettings, PlaylistMode, StreamLimits as Limits};
use crate::library::Source;
use crate::transcode::{self, TranscodeError};
use budget::Cost;
use machine::{Action, Event, Machine, PLAYLIST_WAIT, Reply, RequestId, SEGMENT_WAIT};
use viewers::Time;

/// A request waits this much longer than the machine's own limit before giving up by itself (the
/// machine answers at its limit, on the next tick).
const ANSWER_SLACK: Duration = Duration::from_secs(2);

/// Longest a stream's opening may take: the probe's own limit, a keyframe scan's budget and
/// room for a loaded machine. Past it, GStreamer is taken to have hung.
const OPEN_WATCHDOG: Duration =
    Duration::from_secs(transcode::PROBE_TIMEOUT.as_secs() + delivery::SCAN_BUDGET.as_secs() + 8);

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
    /// How the stream is delivered (`None` until probed).
    pub delivery: Option<Delivery>,
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

/// The machine and what carries out its actions, under one lock.
struct Inner {
    machine: Machine<Body>,
    /// How runs make segments, once the probe has said.
    delivery: Option<Delivery>,
    runs: HashMap<machine::RunId, run::Handle>,
    waiters: HashMap<RequestId, oneshot::Sender<Reply<Body>>>,
    next_request: u64,
}

/// State shared with the runs' threads.
struct Shared {
    name: String,
    source: Source,
    /// The file as it was when the stream opened, to notice it being replaced.
    opened_as: Option<FileStamp>,
    settings: EncoderSettings,
    limits: Limits,
    /// Keyframes of the files served (indexes and scans), shared by every stream.
    keyframes: Arc<delivery::Keyframes>,
    /// The machine's time zero.
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl Shared {
    /// Feeds `event` to the machine and carries out what it decides.
    fn handle(self: &Arc<Self>, event: Event<Body>) {
        let mut inner = self.inner.lock();
        let mut events = vec![event];
        while let Some(event) = events.pop() {
            let now = self.epoch.elapsed();
            let actions = inner.machine.handle(now, event);
            self.apply(&mut inner, actions, &mut events);
        }
    }

    /// Carries out `actions`; a run that could not even be started is reported in `follow_up`.
    fn apply(
        self: &Arc<Self>,
        inner: &mut Inner,
        actions: Vec<Action<Body>>,
        follow_up: &mut Vec<Event<Body>>,
    ) {
        for action in actions {
            match action {
                Action::Start { run, k, at, origin } => {
                    tracing::debug!(stream = %self.name, run = run.0, segment = k, "starting run");
                    let direct = match inner.delivery {
                        Some(Delivery::Direct { audio, .. }) => Some(match audio {
                            DirectAudio::Encode => transcode::DirectAudio::Encode,
                            DirectAudio::Pass | DirectAudio::None => transcode::DirectAudio::Pass,
                        }),
                        _ => None,
                    };
                    match run::start(self, run, at, origin, direct) {
                        Ok(handle) => {
                            inner.runs.insert(run, handle);
                        }
                        Err(err) => follow_up.push(Event::Ended {
                            run,
                            result: Err(err),
                        }),
                    }
                }
                Action::Pause(run) => {
                    if let Some(handle) = inner.runs.get(&run) {
                        handle.pause();
                    }
                }
                Action::Resume(run) => {
                    if let Some(handle) = inner.runs.get(&run) {
                        handle.resume();
                    }
                }
                Action::Stop(run) => {
                    if let Some(handle) = inner.runs.remove(&run) {
                        tracing::debug!(stream = %self.name, run = run.0, "stopping run");
                        handle.stop();
                    }
                }
                Action::Answer { request, reply } => {
                    if let Some(waiter) = inner.waiters.remove(&request) {
                        // The requester may have gone; then nobody needs the answer.
                        let _ = waiter.send(reply);
                    }
                }
            }
        }
    }
}

pub struct Stream {
    shared: Arc<Shared>,
}

/// Openings given up by the watchdog since the process started (each left a thread behind).
static OPENINGS_GIVEN_UP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many streams' openings were given up after [`OPEN_WATCHDOG`] since the process started.
pub fn openings_given_up() -> u64 {
    OPENINGS_GIVEN_UP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Why [`bounded`] has no result.
#[derive(Debug, thiserror::Error)]
enum Unbounded {
    #[error("it took over {} s; given up (its thread is left behind, stuck)", .0.as_secs())]
    TimedOut(Duration),
    #[error("cannot start a thread: {0}")]
    NoThread(std::io::Error),
}

/// Runs `f` on a thread of its own and waits at most `limit` for its result. Past that the
/// thread is left to finish, or to hang, alone: a hung GStreamer call cannot be interrupted.
fn bounded<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Unbounded> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("hlss-open".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(Unbounded::NoThread)?;
    rx.recv_timeout(limit)
        .map_err(|_| Unbounded::TimedOut(limit))
}

/// What opening the stream of `shared`'s source finds: its plan and how it is delivered.
/// Blocking (GStreamer, file reads).
fn open(shared: &Shared) -> Result<(Plan, Delivery), TranscodeError> {
    let settings = &shared.settings;
    let target = settings.segment;
    let path = match &shared.source {
        Source::File(path) => Some(path.as_path()),
        Source::Demo => None,
    };
    match shared.limits.mode {
        PlaylistMode::Event => Ok((
            Plan::new(target, Duration::ZERO, None),
            Delivery::Transcode(Reason::Event),
        )),
        PlaylistMode::Vod => transcode::probe(&shared.source).map(|probe| {
            let max_segment = settings.direct_max_segment;
            delivery::decide(path, &probe, target, max_segment, &shared.keyframes)
        }),
    }
}

/// Tells the machine a request went away (its future was dropped) unless it was answered.
struct Waiting<'a> {
    shared: &'a Arc<Shared>,
    request: RequestId,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let registered = self.shared.inner.lock().waiters.remove(&self.request);
        if registered.is_some() {
            self.shared.handle(Event::Cancelled(self.request));
        }
    }
}

impl Stream {
    pub(crate) fn new(
        name: String,
        source: Source,
        settings: EncoderSettings,
        limits: Limits,
        budget: Budget,
        keyframes: Arc<delivery::Keyframes>,
    ) -> Stream {
        Stream {
            shared: Arc::new(Shared {
                name,
                opened_as: FileStamp::of(&source),
                source,
                settings,
                limits,
                keyframes,
                epoch: Instant::now(),
                inner: Mutex::new(Inner {
                    machine: Machine::new(limits, budget, Time::ZERO),
                    delivery: None,
                    runs: HashMap::new(),
                    waiters: HashMap::new(),
                    next_request: 0,
                }),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Probes the source, decides how to deliver it and makes the plan. Blocking (GStreamer,
    /// file reads): call off the async runtime. Gives up after [`OPEN_WATCHDOG`]: GStreamer has
    /// hung in a probe before (a deadlocked seek), and a stream that never opens would answer
    /// every request with a 30 s wait; given up, it fails, and the next request opens it afresh.
    pub(crate) fn prepare(&self) {
        let shared = self.shared.clone();
        let opened = bounded(OPEN_WATCHDOG, move || open(&shared)).unwrap_or_else(|err| {
            if matches!(err, Unbounded::TimedOut(_)) {
                OPENINGS_GIVEN_UP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::error!(stream = %self.shared.name, "opening the stream: {err}");
            Err(TranscodeError::Failed(
                "opening the file took too long; try again".into(),
            ))
        });
        match &opened {
            Ok((plan, delivery)) => tracing::info!(
                stream = %self.shared.name,
                playlist = if plan.is_vod() { "vod" } else { "event" },
                segments = plan.count(),
                delivery = %describe(delivery),
                "stream opened"
            ),
            Err(err) => tracing::warn!(stream = %self.shared.name, "cannot open stream: {err}"),
        }
        let probed = opened.map(|(plan, delivery)| {
            let cost = match delivery {
                Delivery::Direct { .. } => Cost::Direct,
                Delivery::Transcode(_) => Cost::Transcode,
            };
            self.shared.inner.lock().delivery = Some(delivery);
            (plan, cost)
        });
        self.shared.handle(Event::Probed(probed));
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
        self.shared.inner.lock().machine.dead()
    }

    /// Asks the machine something and waits for its answer (at most `wait` and a little).
    async fn ask(
        &self,
        event: impl FnOnce(RequestId) -> Event<Body>,
        wait: Duration,
    ) -> Result<Reply<Body>, StreamError> {
        let shared = &self.shared;
        let (tx, rx) = oneshot::channel();
        let request = {
            let mut inner = shared.inner.lock();
            let request = RequestId(inner.next_request);
            inner.next_request += 1;
            inner.waiters.insert(request, tx);
            request
        };
        let _waiting = Waiting { shared, request };
        shared.handle(event(request));
        match tokio::time::timeout(wait + ANSWER_SLACK, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            _ => Err(StreamError::NotReady),
        }
    }

    /// A playlist request: joins (or starts) the viewer's session, then waits until a playlist
    /// can be written. `client` identifies the requester (address and user agent, hashed).
    pub async fn open_playlist(
        &self,
        session: Option<SessionId>,
        client: u64,
    ) -> Result<SessionId, StreamError> {
        let reply = self
            .ask(
                |request| Event::Playlist {
                    request,
                    session,
                    client,
                },
                PLAYLIST_WAIT,
            )
            .await?;
        match reply {
            Reply::Playlist(session) => Ok(session),
            Reply::Failed(err) => Err(err),
            Reply::Segment(_) => Err(StreamError::NotReady),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.shared
            .inner
            .lock()
            .machine
            .snapshot(self.shared.settings.segment)
    }

    /// Segment `k` for `session`.
    pub async fn segment(&self, k: u64, session: Option<SessionId>) -> Result<Body, StreamError> {
        let reply = self
            .ask(
                |request| Event::Segment {
                    request,
                    k,
                    session,
                },
                SEGMENT_WAIT,
            )
            .await?;
        match reply {
            Reply::Segment(body) => Ok(body),
            Reply::Failed(err) => Err(err),
            Reply::Playlist(_) => Err(StreamError::NotReady),
        }
    }

    /// Lets time-based decisions happen (time-outs, idle runs, waiting for a place).
    pub fn tick(&self) {
        self.shared.handle(Event::Tick);
    }

    /// Gives up one run no request waits on, for another stream that needs a place.
    pub fn give_up_place(&self) {
        self.shared.handle(Event::GiveUpPlace);
    }

    /// True while a request waits for a run that has no transcode place.
    pub fn wants_place(&self) -> bool {
        self.shared.inner.lock().machine.wants_place()
    }

    /// How long since a viewer last asked this stream for anything (zero while one waits).
    pub fn idle(&self) -> Duration {
        let inner = self.shared.inner.lock();
        inner.machine.idle(self.shared.epoch.elapsed())
    }

    /// Stops every pipeline of the stream (its segments stay); returns how many were running.
    pub fn stop_runs(&self) -> usize {
        let running = self.shared.inner.lock().machine.runs();
        self.shared.handle(Event::StopAll);
        running
    }

    pub fn status(&self) -> Status {
        let inner = self.shared.inner.lock();
        Status {
            delivery: inner.delivery.clone(),
            ..inner.machine.status(self.shared.epoch.elapsed())
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let runs: Vec<run::Handle> = {
            let mut inner = self.shared.inner.lock();
            inner.runs.drain().map(|(_, handle)| handle).collect()
        };
        for handle in runs {
            handle.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_gives_up_on_what_hangs() {
        assert_eq!(bounded(Duration::from_secs(10), || 5).unwrap(), 5);
        let hung = bounded(Duration::from_millis(20), || {
            std::thread::sleep(Duration::from_secs(2));
        });
        assert!(matches!(hung, Err(Unbounded::TimedOut(_))));
    }
}
