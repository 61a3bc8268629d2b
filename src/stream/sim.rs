//! Simulation tests: the stream machine driven by a fake transcoder and scripted viewers in simulated time.
//!
//! Each case draws (from one seed) a file, limits, a fake transcoder (speed, start latency,
//! failures, media shorter or longer than its plan) and a script of viewer steps (open, seek
//! anywhere including the last segment, seek back after eviction, pause, leave) over one to three
//! streams sharing a [`Budget`]. Players fetch like hls.js: one segment at a time, a few segments
//! ahead of the playhead. After every step the checks in [`World::check`] run; a failing case
//! is shrunk to the shortest script that still fails and printed with its seed.
//!
//! `HLSS_SIM_CASES=N` runs N cases instead of the default (a longer soak); `HLSS_SIM_SEED=S`
//! replays one case.

use std::collections::BTreeMap;
use std::time::Duration;

use super::StreamError;
use super::budget::{Budget, Cost, MAX_DIRECT_RUNS};
use super::machine::{
    Action, Event, MAX_ATTEMPTS, MAX_RUNS, Machine, PLACE_WAIT, RUN_IDLE, Reply, RequestId, RunId,
};
use super::plan::Plan;
use super::registry::{Room, make_room};
use super::ring::Payload;
use super::viewers::{SessionId, Time};
use crate::config::{PlaylistMode, StreamLimits};
use crate::transcode::TranscodeError;

/// Simulated time per step.
const STEP: Duration = Duration::from_millis(50);
/// How often the owner ticks the machines (as `main.rs` does).
const TICK: Duration = Duration::from_millis(200);
/// Segment duration of every simulated file.
const SEGMENT: Duration = Duration::from_secs(2);
/// Longest a request for a segment that exists may take in these conditions: a run's start, a
/// few segments of catching up, a tick.
const ANSWER_BOUND: Duration = Duration::from_secs(10);
/// Segments a player keeps ahead of its playhead (hls.js keeps about 30 s).
const PLAYER_BUFFER: u64 = 8;

/// A tiny deterministic generator (SplitMix64): the same seed gives the same case everywhere.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A segment as the fake transcoder makes it: which stream and segment it is, and its size.
#[derive(Debug, Clone, PartialEq)]
struct Fake {
    stream: usize,
    k: u64,
    size: usize,
}

impl Payload for Fake {
    fn size(&self) -> usize {
        self.size
    }
}

/// One simulated file and how the fake transcoder behaves on it.
#[derive(Debug, Clone)]
struct Media {
    /// Segments the plan lists.
    planned: u64,
    /// Segments the media really has (a damaged file ends early; an understated duration runs on).
    real: u64,
    segment_bytes: usize,
    /// Time a run takes to make one segment, and to make its first.
    per_segment: Duration,
    start_latency: Duration,
    /// Every run that reaches this segment fails there (damage in the file).
    broken_at: Option<u64>,
    /// Chance in percent that a run fails at any one segment (a passing fault).
    flaky_percent: u64,
    probe_latency: Duration,
    /// Served as an EVENT playlist (unknown duration): one run from the start, a growing list.
    event: bool,
    /// Served directly (no transcode place; segments between the source's keyframes): the
    /// keyframes' times and the media's end, or `None` for a transcoded stream on the even grid.
    keyframes: Option<(Vec<Duration>, Duration)>,
}

#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    media: Vec<Media>,
    stream_memory: usize,
    global_memory: usize,
    max_transcodes: usize,
    read_ahead: u64,
    script: Vec<Step>,
    /// How long the case runs after its last step.
    tail: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Doing {
    Open(usize),
    Seek(u64),
    /// Stop the playhead (the player still fills its buffer).
    Pause,
    Play,
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Step {
    at: Duration,
    viewer: usize,
    doing: Doing,
}

impl Case {
    fn draw(seed: u64) -> Case {
        let mut rng = Rng(seed);
        let streams = 1 + rng.below(3) as usize;
        let media: Vec<Media> = (0..streams)
            .map(|_| {
                let mut planned = match rng.below(4) {
                    0 => 1 + rng.below(6),
                    1 | 2 => 20 + rng.below(200),
                    _ => 1000 + rng.below(3000),
                };
                let event = rng.chance(20);
                // A direct stream: keyframes every 0.5 to 5 s, irregular, from a late start.
                let keyframes = (!event && rng.chance(30)).then(|| {
                    let mut at = Duration::from_millis(rng.below(1500));
                    let end = SEGMENT * u32::try_from(planned).unwrap_or(u32::MAX);
                    let mut keyframes = Vec::new();
                    while at < end {
                        keyframes.push(at);
                        at += Duration::from_millis(500 + rng.below(4500));
                    }
                    (keyframes, end)
                });
                if let Some(plan) = keyframes.as_ref().and_then(direct_plan) {
                    planned = plan.count().unwrap_or(0);
                }
                let real = match rng.below(6) {
                    0 => planned.saturating_sub(1 + rng.below(planned.min(5))),
                    1 => planned + 1,
                    _ => planned,
                };
                Media {
                    planned,
                    real,
                    segment_bytes: 100_000 + rng.below(900_000) as usize,
                    per_segment: Duration::from_millis(20 + rng.below(600)),
                    start_latency: Duration::from_millis(50 + rng.below(1500)),
                    broken_at: rng.chance(10).then(|| rng.below(planned)),
                    flaky_percent: if rng.chance(20) { 1 + rng.below(5) } else { 0 },
                    probe_latency: Duration::from_millis(rng.below(800)),
                    event,
                    keyframes,
                }
            })
            .collect();
        let viewers = 1 + rng.below(4) as usize;
        let mut script = Vec::new();
        let mut at = Duration::ZERO;
        for viewer in 0..viewers {
            let stream = rng.below(streams as u64) as usize;
            let opened = Duration::from_millis(rng.below(3000));
            script.push(Step {
                at: opened,
                viewer,
                doing: Doing::Open(stream),
            });
            at = at.max(opened);
            let mut t = opened;
            for _ in 0..rng.below(12) {
                t += Duration::from_millis(500 + rng.below(40_000));
                let planned = media[stream].planned;
                let doing = match rng.below(10) {
                    0..=3 => Doing::Seek(rng.below(planned)),
                    // The last segments, and the very last one.
                    4 => Doing::Seek(planned.saturating_sub(1 + rng.below(3))),
                    // Back to the start, or a little back.
                    5 => Doing::Seek(rng.below(3)),
                    6 => Doing::Pause,
                    7 => Doing::Play,
                    8 if rng.chance(30) => Doing::Leave,
                    _ => Doing::Seek(rng.below(planned)),
                };
                script.push(Step {
                    at: t,
                    viewer,
                    doing,
                });
                at = at.max(t);
            }
        }
        script.sort_by_key(|s| (s.at, s.viewer));
        let stream_memory = match rng.below(3) {
            0 => 1_000_000 + rng.below(4_000_000) as usize,
            1 => 16 << 20,
            _ => 256 << 20,
        };
        Case {
            seed,
            media,
            stream_memory,
            global_memory: if rng.chance(30) {
                2_000_000 + rng.below(8_000_000) as usize
            } else {
                1 << 30
            },
            // Enough places for every viewer: waiting for a place is checked in its own test.
            max_transcodes: viewers.max(1) + rng.below(2) as usize,
            read_ahead: 1 + rng.below(8),
            script,
            tail: Duration::from_secs(20 + rng.below(60)),
        }
    }
}

struct FakeRun {
    stream: usize,
    id: RunId,
    start: u64,
    next: u64,
    due: Time,
    /// The machine asked for a pause: the run stops after the segment it is making.
    pause_asked: bool,
    held: bool,
}

#[derive(Debug)]
struct Player {
    stream: usize,
    /// The segment the playhead is in, and when it entered it.
    playhead: u64,
    entered: Time,
    playing: bool,
    /// Segments loaded from the playhead on.
    loaded_until: u64,
    waiting: Option<(RequestId, u64, Time)>,
    session: Option<SessionId>,
    gone: bool,
    /// EVENT playlists: when the player last reloaded the playlist.
    reloaded: Time,
}

struct World<'a> {
    case: &'a Case,
    now: Time,
    budget: Budget,
    machines: Vec<Machine<Fake>>,
    probed: Vec<bool>,
    runs: Vec<FakeRun>,
    players: BTreeMap<usize, Player>,
    owners: BTreeMap<u64, usize>,
    next_request: u64,
    rng: Rng,
    answered: u64,
    /// Failures injected in a row at each (stream, segment): what may make a request fail.
    failed_in_a_row: BTreeMap<(usize, u64), u32>,
    /// EVENT streams: where their one run failed, which ends the stream there.
    event_failed_at: BTreeMap<usize, u64>,
}

impl<'a> World<'a> {
    fn new(case: &'a Case) -> World<'a> {
        let budget = Budget::new(case.max_transcodes, case.global_memory);
        let limits = |media: &Media| StreamLimits {
            mode: if media.event {
                PlaylistMode::Event
            } else {
                PlaylistMode::Vod
            },
            memory: case.stream_memory,
            read_ahead: case.read_ahead,
        };
        World {
            case,
            now: Time::ZERO,
            machines: case
                .media
                .iter()
                .map(|media| Machine::new(limits(media), budget.clone(), Time::ZERO))
                .collect(),
            budget,
            probed: vec![false; case.media.len()],
            runs: Vec::new(),
            players: BTreeMap::new(),
            owners: BTreeMap::new(),
            next_request: 0,
            rng: Rng(case.seed ^ 0xA5A5),
            answered: 0,
            failed_in_a_row: BTreeMap::new(),
            event_failed_at: BTreeMap::new(),
        }
    }

    fn run(mut self) -> Result<u64, String> {
        let end = self.case.script.last().map_or(Duration::ZERO, |s| s.at) + self.case.tail;
        let mut steps = self.case.script.iter().peekable();
        let mut next_tick = Time::ZERO;
        while self.now <= end {
            for (stream, media) in self.case.media.iter().enumerate() {
                if !self.probed[stream] && self.now >= media.probe_latency {
                    self.probed[stream] = true;
                    let direct = media.keyframes.as_ref().and_then(direct_plan);
                    let (plan, cost) = match direct {
                        Some(plan) => (plan, Cost::Direct),
                        None if media.event => {
                            (Plan::new(SEGMENT, Duration::ZERO, None), Cost::Transcode)
                        }
                        None => (
                            Plan::new(
                                SEGMENT,
                                Duration::from_millis(530),
                                Some(SEGMENT * u32::try_from(media.planned).unwrap_or(u32::MAX)),
                            ),
                            Cost::Transcode,
                        ),
                    };
                    self.feed(stream, Event::Probed(Ok((plan, cost))))?;
                }
            }
            while let Some(step) = steps.next_if(|s| s.at <= self.now) {
                self.act(*step)?;
            }
            self.transcode()?;
            self.play()?;
            if self.now >= next_tick {
                next_tick = self.now + TICK;
                for stream in 0..self.machines.len() {
                    self.feed(stream, Event::Tick)?;
                }
                self.reclaim()?;
            }
            self.check()?;
            self.now += STEP;
        }
        Ok(self.answered)
    }

    /// What the registry does when a stream waits for a place.
    fn reclaim(&mut self) -> Result<(), String> {
        let needs: Vec<(bool, Duration)> = self
            .machines
            .iter()
            .map(|m| (m.wants_place(), m.idle(self.now)))
            .collect();
        for (stream, room) in make_room(&needs) {
            // The registry reopens a stopped EVENT stream for its viewers (a new stream, which
            // this simulation does not model): such streams are left running here.
            let watched = self.players.values().any(|p| p.stream == stream && !p.gone);
            if room == Room::StopAll && self.case.media[stream].event && watched {
                continue;
            }
            let event = match room {
                Room::StopAll => Event::StopAll,
                Room::GiveUpOne => Event::GiveUpPlace,
                Room::Retry => Event::Tick,
            };
            self.feed(stream, event)?;
        }
        Ok(())
    }

    fn request(&mut self, viewer: usize, k: Option<u64>) -> Result<(), String> {
        let player = &self.players[&viewer];
        let (stream, session) = (player.stream, player.session);
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.owners.insert(request.0, viewer);
        let event = match k {
            Some(k) => {
                if let Some(p) = self.players.get_mut(&viewer) {
                    p.waiting = Some((request, k, self.now));
                }
                Event::Segment {
                    request,
                    k,
                    session,
                }
            }
            None => Event::Playlist {
                request,
                session,
                client: viewer as u64,
            },
        };
        self.feed(stream, event)
    }

    fn act(&mut self, step: Step) -> Result<(), String> {
        let now = self.now;
        match step.doing {
            Doing::Open(stream) => {
                if let Some(old) = self.players.get(&step.viewer)
                    && let Some((request, _, _)) = old.waiting
                {
                    let old_stream = old.stream;
                    self.feed(old_stream, Event::Cancelled(request))?;
                }
                self.players.insert(
                    step.viewer,
                    Player {
                        stream,
                        playhead: 0,
                        entered: now,
                        playing: true,
                        loaded_until: 0,
                        waiting: None,
                        session: None,
                        gone: false,
                        reloaded: now,
                    },
                );
                self.request(step.viewer, None)?;
            }
            Doing::Seek(k) => {
                let Some(player) = self.players.get_mut(&step.viewer) else {
                    return Ok(());
                };
                if player.gone || player.session.is_none() {
                    return Ok(());
                }
                let cancelled = player.waiting.take();
                let k = match listed(
                    &self.machines[player.stream],
                    &self.case.media[player.stream],
                ) {
                    Some(range) if self.case.media[player.stream].event => {
                        k.clamp(range.start, range.end.saturating_sub(1).max(range.start))
                    }
                    _ => k,
                };
                player.playhead = k;
                player.loaded_until = k;
                player.entered = now;
                let stream = player.stream;
                if let Some((request, _, _)) = cancelled {
                    self.feed(stream, Event::Cancelled(request))?;
                }
            }
            Doing::Pause | Doing::Play => {
                if let Some(player) = self.players.get_mut(&step.viewer) {
                    player.playing = step.doing == Doing::Play;
                    player.entered = now;
                }
            }
            Doing::Leave => {
                if let Some(player) = self.players.get_mut(&step.viewer) {
                    player.gone = true;
                    let stream = player.stream;
                    if let Some((request, _, _)) = player.waiting.take() {
                        self.feed(stream, Event::Cancelled(request))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Players advance their playhead over loaded segments and ask for the next one.
    fn play(&mut self) -> Result<(), String> {
        let mut asks = Vec::new();
        let mut reloads = Vec::new();
        for (viewer, player) in &mut self.players {
            if player.gone || player.session.is_none() {
                continue;
            }
            let media = &self.case.media[player.stream];
            let Some(range) = listed(&self.machines[player.stream], media) else {
                continue;
            };
            if media.event {
                // A live player reloads the playlist every target duration; one that fell out of
                // the window jumps to its start.
                if self.now.saturating_sub(player.reloaded) >= SEGMENT {
                    player.reloaded = self.now;
                    reloads.push(*viewer);
                }
                if player.waiting.is_none() && player.loaded_until < range.start {
                    player.playhead = range.start;
                    player.loaded_until = range.start;
                }
            }
            let planned = range.end;
            if player.playing
                && player.loaded_until > player.playhead
                && self.now.saturating_sub(player.entered) >= SEGMENT
            {
                player.playhead += 1;
                player.entered = self.now;
            }
            if player.waiting.is_none()
                && player.loaded_until < planned
                && player.loaded_until < player.playhead + PLAYER_BUFFER
            {
                asks.push((*viewer, player.loaded_until));
            }
        }
        for (viewer, k) in asks {
            self.request(viewer, Some(k))?;
        }
        for viewer in reloads {
            self.request(viewer, None)?;
        }
        Ok(())
    }

    /// The fake transcoder: each run makes its next segment when due, unless held.
    fn transcode(&mut self) -> Result<(), String> {
        let mut index = 0;
        while index < self.runs.len() {
            let run = &self.runs[index];
            if run.held || self.now < run.due {
                index += 1;
                continue;
            }
            let media = &self.case.media[run.stream];
            let (stream, id, k) = (run.stream, run.id, run.next);
            let flaky = media.flaky_percent > 0 && self.rng.chance(media.flaky_percent);
            if k >= media.real || media.broken_at == Some(k) || flaky {
                let result = if k >= media.real {
                    Ok(())
                } else {
                    *self.failed_in_a_row.entry((stream, k)).or_default() += 1;
                    if media.event {
                        self.event_failed_at.entry(stream).or_insert(k);
                    }
                    Err(TranscodeError::Failed("simulated failure".into()))
                };
                self.runs.remove(index);
                self.feed(stream, Event::Ended { run: id, result })?;
                continue;
            }
            self.failed_in_a_row.remove(&(stream, k));
            let body = Fake {
                stream,
                k,
                size: media.segment_bytes,
            };
            let per_segment = media.per_segment;
            let run = &mut self.runs[index];
            let sequence = k - run.start;
            run.next += 1;
            run.due = self.now + per_segment;
            run.held = run.pause_asked;
            self.feed(
                stream,
                Event::Produced {
                    run: id,
                    sequence,
                    duration: SEGMENT,
                    body,
                },
            )?;
            index += 1;
        }
        Ok(())
    }

    fn feed(&mut self, stream: usize, event: Event<Fake>) -> Result<(), String> {
        let actions = self.machines[stream].handle(self.now, event);
        for action in actions {
            match action {
                Action::Start { run, k, .. } => {
                    let media = &self.case.media[stream];
                    self.runs.push(FakeRun {
                        stream,
                        id: run,
                        start: k,
                        next: k,
                        due: self.now + media.start_latency,
                        pause_asked: false,
                        held: false,
                    });
                }
                Action::Pause(run) => {
                    if let Some(r) = self
                        .runs
                        .iter_mut()
                        .find(|r| r.id == run && r.stream == stream)
                    {
                        r.pause_asked = true;
                    }
                }
                Action::Resume(run) => {
                    if let Some(r) = self
                        .runs
                        .iter_mut()
                        .find(|r| r.id == run && r.stream == stream)
                    {
                        r.pause_asked = false;
                        if r.held {
                            r.held = false;
                            r.due = r.due.max(self.now);
                        }
                    }
                }
                Action::Stop(run) => self.runs.retain(|r| !(r.id == run && r.stream == stream)),
                Action::Answer { request, reply } => self.answered(stream, request, reply)?,
            }
        }
        Ok(())
    }

    fn answered(
        &mut self,
        stream: usize,
        request: RequestId,
        reply: Reply<Fake>,
    ) -> Result<(), String> {
        let Some(viewer) = self.owners.remove(&request.0) else {
            return Err(format!("answer to unknown request {request:?}"));
        };
        self.answered += 1;
        let now = self.now;
        let media = &self.case.media[stream];
        let Some(player) = self.players.get_mut(&viewer) else {
            return Ok(());
        };
        let asked = match player.waiting {
            Some((id, k, since)) if id == request => Some((k, since)),
            _ => None,
        };
        let Some((k, since)) = asked else {
            // A playlist answer, or one for a request the player already gave up on.
            if let Reply::Playlist(session) = reply {
                if player.session.is_none()
                    && media.event
                    && let Some(range) = listed(&self.machines[stream], media)
                {
                    // hls.js joins a live playlist about three segments from its end.
                    let start = range.end.saturating_sub(3).max(range.start);
                    player.playhead = start;
                    player.loaded_until = start;
                }
                player.session = Some(session);
            } else if let Reply::Failed(err) = reply
                && player.session.is_none()
                && self.event_failed_at.get(&stream) != Some(&0)
            {
                return Err(format!("viewer {viewer}: playlist failed: {err}"));
            }
            return Ok(());
        };
        player.waiting = None;
        let waited = now.saturating_sub(since);
        match reply {
            Reply::Segment(body) => {
                if body.stream != stream || body.k != k {
                    return Err(format!(
                        "viewer {viewer} asked for {k} of stream {stream}, got {body:?}"
                    ));
                }
                if waited > ANSWER_BOUND {
                    return Err(format!("viewer {viewer}: segment {k} took {waited:?}"));
                }
                player.loaded_until = player.loaded_until.max(k + 1);
                Ok(())
            }
            Reply::Failed(StreamError::NoSuchSegment) if k >= media.real => {
                player.gone = true;
                Ok(())
            }
            // A live player that lagged behind a sliding window.
            Reply::Failed(StreamError::Evicted(_)) if media.event => Ok(()),
            // An EVENT stream ends where its run failed.
            Reply::Failed(StreamError::NoSuchSegment | StreamError::Transcode(_))
                if self.event_failed_at.get(&stream).is_some_and(|at| k >= *at) =>
            {
                player.gone = true;
                Ok(())
            }
            Reply::Failed(StreamError::Transcode(_))
                if self
                    .failed_in_a_row
                    .get(&(stream, k))
                    .is_some_and(|n| *n >= MAX_ATTEMPTS) =>
            {
                player.gone = true;
                Ok(())
            }
            Reply::Failed(err) => Err(format!(
                "viewer {viewer}: segment {k} of stream {stream} (real {}, planned {}) failed after {waited:?}: {err}",
                media.real, media.planned
            )),
            Reply::Playlist(_) => Err(format!("viewer {viewer}: a playlist answer to segment {k}")),
        }
    }

    /// What must hold after every step.
    fn check(&self) -> Result<(), String> {
        let largest = self
            .case
            .media
            .iter()
            .map(|m| m.segment_bytes)
            .max()
            .unwrap_or(0);
        for (stream, machine) in self.machines.iter().enumerate() {
            // The ring keeps the segment it just took even when that alone is over budget.
            if machine.bytes_held() > self.case.stream_memory + largest {
                return Err(format!(
                    "stream {stream} holds {} bytes",
                    machine.bytes_held()
                ));
            }
            if machine.runs() > MAX_RUNS {
                return Err(format!("stream {stream} has {} runs", machine.runs()));
            }
            if machine.runs_unneeded_for(self.now, RUN_IDLE + TICK) > 0 {
                return Err(format!("stream {stream} keeps a run nobody needs"));
            }
            let stuck = machine.stuck_requests();
            if !stuck.is_empty() {
                return Err(format!(
                    "stream {stream}: requests for {stuck:?} wait on no run"
                ));
            }
        }
        let streams = self.machines.len();
        if self.budget.bytes()
            > self.case.global_memory.max(self.case.stream_memory) + largest * streams
        {
            return Err(format!("all streams hold {} bytes", self.budget.bytes()));
        }
        if self.budget.transcodes() > self.case.max_transcodes {
            return Err(format!("{} transcodes running", self.budget.transcodes()));
        }
        if self.budget.direct_runs() > MAX_DIRECT_RUNS {
            return Err(format!("{} direct runs", self.budget.direct_runs()));
        }
        for (viewer, player) in &self.players {
            if let Some((_, k, since)) = player.waiting
                && self.now.saturating_sub(since) > ANSWER_BOUND + PLACE_WAIT
            {
                return Err(format!(
                    "viewer {viewer}: segment {k} unanswered since {since:?}"
                ));
            }
        }
        Ok(())
    }
}

fn run_case(case: &Case) -> Result<u64, String> {
    World::new(case).run()
}

/// The shortest script (by removing steps) that still fails.
fn shrink(case: &Case) -> Case {
    let mut best = case.clone();
    loop {
        let mut smaller = None;
        for i in (0..best.script.len()).rev() {
            let mut candidate = best.clone();
            candidate.script.remove(i);
            if run_case(&candidate).is_err() {
                smaller = Some(candidate);
                break;
            }
        }
        match smaller {
            Some(candidate) => best = candidate,
            None => return best,
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn random_viewers_always_get_their_segments() {
    let cases = env_u64("HLSS_SIM_CASES").unwrap_or(2000);
    let seeds: Vec<u64> = match env_u64("HLSS_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (0..cases)
            .map(|i| i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234)
            .collect(),
    };
    let started = std::time::Instant::now();
    let mut answered = 0;
    for seed in seeds.iter().copied() {
        let case = Case::draw(seed);
        match run_case(&case) {
            Ok(n) => answered += n,
            Err(err) => {
                let small = shrink(&case);
                let why = run_case(&small).err().unwrap_or_default();
                panic!(
                    "seed {seed} fails: {err}\nshortest script ({} of {} steps) fails with: {why}\n{:#?}",
                    small.script.len(),
                    case.script.len(),
                    small
                );
            }
        }
    }
    eprintln!(
        "{} simulated cases, {answered} answers, in {:?}",
        seeds.len(),
        started.elapsed()
    );
}

/// A file people actually watch long: play 5..125 with little memory, then seek back.
#[test]
fn seeking_back_after_eviction_is_answered() {
    let media = Media {
        planned: 315,
        real: 315,
        segment_bytes: 600_000,
        per_segment: Duration::from_millis(100),
        start_latency: Duration::from_millis(300),
        broken_at: None,
        flaky_percent: 0,
        probe_latency: Duration::from_millis(100),
        event: false,
        keyframes: None,
    };
    let mut script = vec![
        Step {
            at: Duration::ZERO,
            viewer: 0,
            doing: Doing::Open(0),
        },
        Step {
            at: Duration::from_secs(1),
            viewer: 0,
            doing: Doing::Seek(5),
        },
    ];
    // 120 segments of playing, then back to where it started, then to the start.
    script.push(Step {
        at: Duration::from_secs(250),
        viewer: 0,
        doing: Doing::Seek(5),
    });
    script.push(Step {
        at: Duration::from_secs(300),
        viewer: 0,
        doing: Doing::Seek(0),
    });
    script.push(Step {
        at: Duration::from_secs(330),
        viewer: 0,
        doing: Doing::Seek(314),
    });
    let case = Case {
        seed: 7,
        media: vec![media],
        stream_memory: 16 << 20,
        global_memory: 1 << 30,
        max_transcodes: 2,
        read_ahead: 5,
        script,
        tail: Duration::from_secs(30),
    };
    let answered = run_case(&case).unwrap_or_else(|err| panic!("{err}"));
    assert!(answered > 140, "only {answered} answers");
}

/// Every place taken: a request waits for one, then is answered "busy", never left hanging.
#[test]
fn without_a_place_requests_are_answered_busy_in_bounded_time() {
    let budget = Budget::new(1, 1 << 30);
    let held = budget.try_place(Cost::Transcode).expect("the only place");
    let limits = StreamLimits {
        mode: PlaylistMode::Vod,
        memory: 1 << 20,
        read_ahead: 3,
    };
    let mut machine: Machine<Fake> = Machine::new(limits, budget.clone(), Time::ZERO);
    let plan = Plan::new(SEGMENT, Duration::ZERO, Some(SEGMENT * 10));
    machine.handle(Time::ZERO, Event::Probed(Ok((plan, Cost::Transcode))));
    let actions = machine.handle(
        Time::ZERO,
        Event::Segment {
            request: RequestId(1),
            k: 4,
            session: None,
        },
    );
    assert!(actions.is_empty(), "{actions:?}");
    assert!(machine.wants_place());
    let mut now = Time::ZERO;
    let mut answer = None;
    while answer.is_none() && now < PLACE_WAIT + TICK {
        now += TICK;
        answer = machine
            .handle(now, Event::Tick)
            .into_iter()
            .find_map(|a| match a {
                Action::Answer {
                    reply: Reply::Failed(err),
                    ..
                } => Some(err),
                _ => None,
            });
    }
    assert!(
        matches!(answer, Some(StreamError::Busy(1))),
        "{answer:?} after {now:?}"
    );
    // Once the place is free, the next request gets a run at once.
    drop(held);
    let actions = machine.handle(
        now,
        Event::Segment {
            request: RequestId(2),
            k: 4,
            session: None,
        },
    );
    assert!(
        matches!(actions[..], [Action::Start { k: 4, .. }]),
        "{actions:?}"
    );
}

/// A stopped run's end says nothing about the segments after it.
#[test]
fn a_stopped_runs_end_makes_nothing_404() {
    let limits = StreamLimits {
        mode: PlaylistMode::Vod,
        memory: 1 << 20,
        read_ahead: 3,
    };
    let mut machine: Machine<Fake> = Machine::new(limits, Budget::new(1, 1 << 30), Time::ZERO);
    let plan = Plan::new(SEGMENT, Duration::ZERO, Some(SEGMENT * 100));
    machine.handle(Time::ZERO, Event::Probed(Ok((plan, Cost::Transcode))));
    let ask = |machine: &mut Machine<Fake>, request, k| {
        machine.handle(
            Time::ZERO,
            Event::Segment {
                request: RequestId(request),
                k,
                session: None,
            },
        )
    };
    let started = |actions: &[Action<Fake>]| {
        actions.iter().find_map(|a| match a {
            Action::Start { run, .. } => Some(*run),
            _ => None,
        })
    };
    let first = started(&ask(&mut machine, 1, 10)).expect("a run at 10");
    // Another viewer at 50 waits: the only place is taken by a run a request waits on.
    assert!(started(&ask(&mut machine, 2, 50)).is_none());
    let made = machine.handle(
        Time::ZERO,
        Event::Produced {
            run: first,
            sequence: 0,
            duration: SEGMENT,
            body: Fake {
                stream: 0,
                k: 10,
                size: 10,
            },
        },
    );
    // Request 1 is answered, so its run gives the place to the one at 50.
    assert!(
        made.iter()
            .any(|a| matches!(a, Action::Stop(run) if *run == first)),
        "{made:?}"
    );
    let second = started(&made).expect("a run at 50");
    // The stopped pipeline reports its end as pipelines do: it is ignored.
    let ended = machine.handle(
        Time::ZERO,
        Event::Ended {
            run: first,
            result: Ok(()),
        },
    );
    assert!(ended.is_empty(), "{ended:?}");
    let later = ask(&mut machine, 3, 11);
    assert!(
        !later.iter().any(|a| matches!(a, Action::Answer { .. })),
        "{later:?}"
    );
    assert_ne!(second, first);
}

#[test]
fn seeds_are_reproducible() {
    let a = Case::draw(99);
    let b = Case::draw(99);
    assert_eq!(a.script, b.script);
    assert_eq!(run_case(&a), run_case(&b));
}

/// The segments a viewer can see listed: the whole plan for VOD, the current window for EVENT.
fn listed(machine: &Machine<Fake>, media: &Media) -> Option<std::ops::Range<u64>> {
    if !media.event {
        return Some(0..media.planned);
    }
    let snapshot = machine.snapshot(SEGMENT);
    let first = snapshot.segments.first()?.0;
    Some(first..first + snapshot.segments.len() as u64)
}

/// A direct stream's plan: segments between its keyframes up to its end.
fn direct_plan((keyframes, end): &(Vec<Duration>, Duration)) -> Option<Plan> {
    Plan::at_keyframes(keyframes, *end, SEGMENT)
}

/// A direct stream answers its playlist at once and starts its run at the beginning with it;
/// a player reloading its playlist mid-watch starts nothing.
#[test]
fn a_direct_playlist_starts_the_first_run_at_once() {
    let limits = StreamLimits {
        mode: PlaylistMode::Vod,
        memory: 1 << 20,
        read_ahead: 3,
    };
    let mut machine: Machine<Fake> = Machine::new(limits, Budget::new(1, 1 << 30), Time::ZERO);
    let keyframes: Vec<Duration> = (0..15).map(|k| SEGMENT * k).collect();
    let plan = Plan::at_keyframes(&keyframes, Duration::from_secs(30), SEGMENT).expect("a plan");
    machine.handle(Time::ZERO, Event::Probed(Ok((plan, Cost::Direct))));
    let open = |machine: &mut Machine<Fake>, request| {
        machine.handle(
            Time::ZERO,
            Event::Playlist {
                request: RequestId(request),
                session: None,
                client: 7,
            },
        )
    };
    let actions = open(&mut machine, 1);
    assert!(
        matches!(
            actions[..],
            [
                Action::Answer {
                    reply: Reply::Playlist(_),
                    ..
                },
                Action::Start { k: 0, .. }
            ]
        ),
        "{actions:?}"
    );
    // The run stops for a seek elsewhere; the same player reloading its playlist starts none.
    let elsewhere = machine.handle(
        Time::ZERO,
        Event::Segment {
            request: RequestId(2),
            k: 10,
            session: None,
        },
    );
    assert!(
        elsewhere
            .iter()
            .any(|a| matches!(a, Action::Start { k: 10, .. })),
        "{elsewhere:?}"
    );
    let reload = open(&mut machine, 3);
    assert!(
        !reload.iter().any(|a| matches!(a, Action::Start { .. })),
        "{reload:?}"
    );
}
