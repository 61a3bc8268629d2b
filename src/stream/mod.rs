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
use crate::library::sidecar::{self, Sidecar};
use crate::subtitles::{self, Cue};
use crate::transcode::{self, Probe, SubtitleTrack, TranscodeError};
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

impl Snapshot {
    /// A VOD plan's playlist: every segment, complete.
    pub fn of_plan(plan: &Plan) -> Snapshot {
        let count = plan.count().unwrap_or(0);
        Snapshot {
            vod: true,
            target_duration: plan.target_duration_secs(),
            first_sequence: 0,
            segments: (0..count)
                .filter_map(|k| Some((k, plan.duration_of(k)?)))
                .collect(),
            ended: true,
        }
    }
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

/// Which part of a file a stream makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// The video with the default audio track (or whichever of them the file has).
    Main,
    /// Audio track `n` of [`Opening::tracks`] alone: an alternate audio rendition.
    Audio(usize),
}

/// What opening a file found: how its main stream is made, and what its renditions share.
#[derive(Debug)]
pub struct Opening {
    pub plan: Plan,
    pub delivery: Delivery,
    /// `None` for a stream that is not probed (EVENT playlists): no renditions then.
    pub probe: Option<Probe>,
    /// The file's size, for its average bit rate.
    pub file_len: Option<u64>,
    /// A direct stream's peak segment bit rate as the file's keyframe positions give it
    /// ([`delivery::direct_peak`]), when the container says.
    pub direct_peak: Option<u64>,
    /// Text subtitle tracks that become WebVTT renditions: embedded ones first, in the
    /// container's order, then sidecar files.
    pub subtitles: Vec<Subtitles>,
}

/// Where a subtitle rendition's cues come from.
#[derive(Debug, Clone)]
pub enum Subtitles {
    Embedded(SubtitleTrack),
    Sidecar(Sidecar),
}

impl Opening {
    /// The audio tracks offered as renditions: every one, when there are several and the
    /// playlist is complete (VOD); none otherwise (the main rendition's own sound is all).
    /// With renditions the main rendition is the picture alone: a variant whose own sound is
    /// one of the tracks cannot be switched away from in every client (GStreamer's hlsdemux2
    /// keeps playing a variant's muxed sound whatever is selected).
    pub fn audio_renditions(&self) -> &[transcode::AudioTrack] {
        match &self.probe {
            // A file of sound alone keeps its default track in its one variant: without a
            // picture, the variant would have nothing left to carry.
            Some(probe)
                if self.plan.is_vod()
                    && probe.tracks.audio.len() > 1
                    && probe.codecs.video.is_some() =>
            {
                &probe.tracks.audio
            }
            _ => &[],
        }
    }

    /// Whether alternate audio rendition `n` passes the source's AAC through (else it is
    /// encoded to stereo AAC).
    pub fn audio_passes(&self, n: usize, settings: &EncoderSettings) -> bool {
        self.audio_renditions()
            .get(n)
            .is_some_and(|t| t.codec.aac_lc && settings.direct_max_segment.is_some())
    }

    /// Bitmap subtitle tracks, which are not offered (listed on the status page).
    pub fn bitmap_subtitles(&self) -> Vec<&SubtitleTrack> {
        self.probe
            .iter()
            .flat_map(|p| &p.tracks.subtitles)
            .filter(|t| !t.is_text())
            .collect()
    }
}

/// Every subtitle rendition's cues, or why they could not be read, by rendition.
type AllCues = Arc<[Result<Arc<[Cue]>, String>]>;

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
    /// How runs make segments and what they pick, once the probe has said.
    opening: Option<Arc<Opening>>,
    runs: HashMap<machine::RunId, run::Handle>,
    waiters: HashMap<RequestId, oneshot::Sender<Reply<Body>>>,
    next_request: u64,
}

/// State shared with the runs' threads.
struct Shared {
    name: String,
    source: Source,
    part: Part,
    /// A rendition's opening, taken from its main stream's (renditions do not probe).
    given: Option<Arc<Opening>>,
    /// Every subtitle rendition's cues in the plan's local time (0 at the origin), read once,
    /// on the first request for any of them: one demux pass reads every embedded track.
    cues: tokio::sync::OnceCell<AllCues>,
    /// The opening's outcome, for requests that need it before any playlist.
    opened: tokio::sync::watch::Sender<Option<Result<Arc<Opening>, TranscodeError>>>,
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
                    let kind = run_kind(&self.part, inner.opening.as_deref(), &self.settings);
                    match run::start(self, run, at, origin, kind) {
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

/// What opening the stream of `shared`'s source finds: its plan, how it is delivered, its
/// tracks. Blocking (GStreamer, file reads).
fn open(shared: &Shared) -> Result<Opening, TranscodeError> {
    let settings = &shared.settings;
    let target = settings.segment;
    let path = match &shared.source {
        Source::File(path) => Some(path.as_path()),
        Source::Demo => None,
    };
    if shared.limits.mode == PlaylistMode::Event {
        return Ok(Opening {
            plan: Plan::new(target, Duration::ZERO, None),
            delivery: Delivery::Transcode(Reason::Event),
            probe: None,
            file_len: None,
            direct_peak: None,
            subtitles: Vec::new(),
        });
    }
    let mut probe = transcode::probe(&shared.source)?;
    if let Some(path) = path {
        label_tracks(&mut probe, path);
    }
    let max_segment = settings.direct_max_segment;
    let (plan, delivery) = delivery::decide(path, &probe, target, max_segment, &shared.keyframes);
    let direct_peak = match (&delivery, path) {
        (Delivery::Direct { video: true, .. }, Some(path)) => {
            delivery::direct_peak(path, &plan, target, &shared.keyframes)
        }
        _ => None,
    };
    let embedded = probe
        .tracks
        .subtitles
        .iter()
        .filter(|t| t.is_text())
        .cloned();
    let subtitles = embedded
        .map(Subtitles::Embedded)
        .chain(
            path.into_iter()
                .flat_map(sidecar::find)
                .map(Subtitles::Sidecar),
        )
        .collect();
    Ok(Opening {
        plan,
        delivery,
        probe: Some(probe),
        file_len: shared.opened_as.map(|stamp| stamp.len),
        direct_peak,
        subtitles,
    })
}

/// How runs of `part` are made, once `opening` is known (before it, a plain transcode: the
/// EVENT stream's one run, which never waits for a probe).
fn run_kind(part: &Part, opening: Option<&Opening>, settings: &EncoderSettings) -> run::Kind {
    let tracks = opening
        .and_then(|o| o.probe.as_ref())
        .map(|p| &p.tracks.audio[..])
        .unwrap_or_default();
    match part {
        Part::Main => {
            let renditions = opening.is_some_and(|o| !o.audio_renditions().is_empty());
            let pick = transcode::Pick {
                // Several tracks and no renditions (sound alone): the default, by its id.
                audio: (!renditions && tracks.len() > 1)
                    .then(|| tracks.first().map(|t| t.stream_id.clone()))
                    .flatten(),
                without_audio: renditions,
                cuts: None,
                h264_level: opening
                    .and_then(|o| encoded_video(o, settings))
                    .map(|v| v.level),
            };
            match opening.map(|o| &o.delivery) {
                Some(Delivery::Direct { audio, .. }) => run::Kind::Direct(
                    pick,
                    match audio {
                        DirectAudio::Encode => transcode::DirectAudio::Encode,
                        DirectAudio::Pass | DirectAudio::None => transcode::DirectAudio::Pass,
                    },
                ),
                _ => run::Kind::Transcode(pick),
            }
        }
        Part::Audio(n) => {
            let track = tracks.get(*n);
            let plan = opening.map(|o| &o.plan);
            let pick = transcode::Pick {
                audio: track.map(|t| t.stream_id.clone()),
                without_audio: false,
                cuts: plan.and_then(Plan::cut_points),
                h264_level: None,
            };
            let pass = opening.is_some_and(|o| o.audio_passes(*n, settings));
            run::Kind::Audio(pick, pass)
        }
    }
}

/// The video a transcoded main stream makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodedVideo {
    pub size: (u32, u32),
    pub fps: Option<f64>,
    /// `level_idc` (41 for 4.1).
    pub level: u8,
}

/// What a transcode of `opening`'s video makes (`None` for audio alone or an unprobed stream).
pub fn encoded_video(opening: &Opening, settings: &EncoderSettings) -> Option<EncodedVideo> {
    let video = opening.probe.as_ref()?.codecs.video.as_ref()?;
    let size = transcode::encoded_size(video, settings.max_height)?;
    let fps = video.frame_rate.map(|(n, d)| f64::from(n) / f64::from(d));
    // An unknown rate is taken as 60 so the level allows the worst common case.
    let level = transcode::h264_level(size, fps.unwrap_or(60.0), settings.video_kbps);
    Some(EncodedVideo { size, fps, level })
}

/// Longest the one pass reading a file's embedded subtitles may take (a 2-hour Matroska film
/// is demuxed in a few seconds).
const EXTRACT_LIMIT: Duration = Duration::from_secs(60);

/// Reads every subtitle rendition's cues of `opening` (see [`Stream::cues`]). Blocking.
fn load_cues(source: &Source, opening: &Opening) -> AllCues {
    let origin = opening.plan.origin();
    let embedded = opening
        .subtitles
        .iter()
        .any(|s| matches!(s, Subtitles::Embedded(_)));
    let extracted = match source {
        Source::File(path) if embedded => transcode::extract_text(path, EXTRACT_LIMIT)
            .map_err(|err| format!("the file's subtitles could not be read: {err}")),
        _ => Ok(Vec::new()),
    };
    opening
        .subtitles
        .iter()
        .map(|subtitles| match subtitles {
            Subtitles::Embedded(track) => {
                let tracks = extracted.as_ref().map_err(Clone::clone)?;
                let found = tracks
                    .iter()
                    .find(|t| t.stream_id == track.stream_id)
                    .ok_or_else(|| "the subtitle track was not found".to_owned())?;
                let local = found
                    .cues
                    .iter()
                    .filter(|c| c.end > origin)
                    .map(|c| Cue {
                        start: c.start.saturating_sub(origin),
                        end: c.end.saturating_sub(origin),
                        text: c.text.clone(),
                    })
                    .collect();
                Ok(local)
            }
            Subtitles::Sidecar(sidecar) => {
                let bytes = std::fs::read(&sidecar.path)
                    .map_err(|_| "the subtitle file could not be read".to_owned())?;
                subtitles::parse(&bytes, sidecar.format)
                    .map(Arc::from)
                    .map_err(|err| format!("the subtitle file is not readable: {err}"))
            }
        })
        .collect()
}

/// Completes the probe's tracks from the container's own labels (Matroska: the Discoverer can
/// finish before a sparse subtitle track's language reaches it) and puts the audio track flagged
/// default first: the main rendition plays it.
fn label_tracks(probe: &mut Probe, path: &std::path::Path) {
    let Ok(labels) = crate::library::index::track_labels(path) else {
        return;
    };
    // matroskademux names its streams `<upstream id>/<track number, 3 digits>:<track UID>`.
    let label = |stream_id: &str| {
        let number: u64 = stream_id
            .rsplit_once('/')?
            .1
            .split(':')
            .next()?
            .parse()
            .ok()?;
        labels.iter().find(|l| l.number == number)
    };
    let mut defaults = Vec::new();
    for track in &mut probe.tracks.audio {
        let found = label(&track.stream_id);
        // The container's own labels win: the Discoverer's may be missing or the file's.
        if let Some(found) = found {
            track.language = found.language.clone().or(track.language.take());
            track.title = found.name.clone().or(track.title.take());
        }
        defaults.push(found.is_some_and(|l| l.default));
    }
    for track in &mut probe.tracks.subtitles {
        if let Some(found) = label(&track.stream_id) {
            track.language = found.language.clone().or(track.language.take());
            track.title = found.name.clone().or(track.title.take());
            track.forced = found.forced;
        }
    }
    if let Some(first_default) = defaults.iter().position(|d| *d).filter(|i| *i > 0) {
        let track = probe.tracks.audio.remove(first_default);
        probe.codecs.audio = Some(track.codec.clone());
        probe.tracks.audio.insert(0, track);
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
    /// The main stream of `source`, or (with `given`, its main stream's opening) the rendition
    /// `part` of it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: String,
        source: Source,
        part: Part,
        given: Option<Arc<Opening>>,
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
                part,
                given,
                opened: tokio::sync::watch::Sender::new(None),
                cues: tokio::sync::OnceCell::new(),
                settings,
                limits,
                keyframes,
                epoch: Instant::now(),
                inner: Mutex::new(Inner {
                    machine: Machine::new(limits, budget, Time::ZERO),
                    opening: None,
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
        let opened = match &self.shared.given {
            Some(given) => Ok(given.clone()),
            None => self.open_main(),
        };
        let probed = opened.as_ref().map(|opening| {
            let cost = match (&self.shared.part, &opening.delivery) {
                // An audio rendition decodes and encodes sound at most: as cheap as a direct run.
                (Part::Audio(_), _) | (_, Delivery::Direct { .. }) => Cost::Direct,
                (Part::Main, Delivery::Transcode(_)) => Cost::Transcode,
            };
            self.shared.inner.lock().opening = Some(opening.clone());
            (opening.plan.clone(), cost)
        });
        self.shared.opened.send_replace(Some(opened.clone()));
        self.shared
            .handle(Event::Probed(probed.map_err(|e| e.clone())));
    }

    /// Opens a main stream: probe, delivery, plan, subtitle tracks.
    fn open_main(&self) -> Result<Arc<Opening>, TranscodeError> {
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
            Ok(opening) => tracing::info!(
                stream = %self.shared.name,
                playlist = if opening.plan.is_vod() { "vod" } else { "event" },
                segments = opening.plan.count(),
                delivery = %describe(&opening.delivery),
                audio_tracks = opening.probe.as_ref().map_or(0, |p| p.tracks.audio.len()),
                subtitles = opening.subtitles.len(),
                "stream opened"
            ),
            Err(err) => tracing::warn!(stream = %self.shared.name, "cannot open stream: {err}"),
        }
        opened.map(Arc::new)
    }

    /// What opening the file found, once it has (waits at most the playlist wait).
    pub async fn opening(&self) -> Result<Arc<Opening>, StreamError> {
        let mut opened = self.shared.opened.subscribe();
        let waited = tokio::time::timeout(PLAYLIST_WAIT, opened.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(outcome)) => match outcome.as_ref() {
                Some(Ok(opening)) => Ok(opening.clone()),
                Some(Err(err)) => Err(StreamError::Transcode(err.clone())),
                None => Err(StreamError::NotReady),
            },
            _ => Err(StreamError::NotReady),
        }
    }

    /// The cues of subtitle rendition `n` of `opening` (this main stream's), in the plan's
    /// local time: media time minus the origin for embedded tracks; a sidecar file's own times
    /// (0 is where the media starts, as players read them).
    pub async fn cues(&self, opening: &Arc<Opening>, n: usize) -> Result<Arc<[Cue]>, StreamError> {
        if n >= opening.subtitles.len() {
            return Err(StreamError::NoSuchSegment);
        }
        let (source, loading) = (self.shared.source.clone(), opening.clone());
        let all = self
            .shared
            .cues
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || load_cues(&source, &loading))
                    .await
                    .unwrap_or_else(|_| Arc::from([]))
            })
            .await;
        match all.get(n) {
            Some(Ok(cues)) => Ok(cues.clone()),
            Some(Err(err)) => Err(StreamError::Transcode(TranscodeError::Failed(err.clone()))),
            None => Err(StreamError::Transcode(TranscodeError::Failed(
                "the subtitles could not be read".into(),
            ))),
        }
    }

    /// Which part of its file the stream makes.
    pub fn part(&self) -> &Part {
        &self.shared.part
    }

    /// What opening the file found, if it has opened.
    pub fn opened(&self) -> Option<Arc<Opening>> {
        self.shared.inner.lock().opening.clone()
    }

    /// The opening a rendition was made from (`None` for a main stream).
    pub(crate) fn given(&self) -> Option<&Arc<Opening>> {
        self.shared.given.as_ref()
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
            delivery: inner.opening.as_ref().map(|o| o.delivery.clone()),
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
