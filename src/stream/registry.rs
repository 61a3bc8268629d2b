//! The streams that exist: one per source, opened once however many viewers ask at the same time,
//! closed when nobody has watched for a while.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Budget, Opening, Part, Stream, delivery};
use crate::config::{EncoderSettings, StreamLimits as Limits};
use crate::library::Source;

/// A stream nobody asked anything of for this long gives up its pipelines when another stream
/// needs a place under `--max-transcodes` (its segments stay until `--idle-timeout`). A player
/// that is playing asks for a segment at least every segment duration.
pub const RECLAIM_AFTER: Duration = Duration::from_secs(4);

pub struct Registry {
    settings: EncoderSettings,
    limits: Limits,
    budget: Budget,
    streams: Mutex<HashMap<(Source, Part), Arc<Stream>>>,
    /// Keyframes per file version (indexes and scans), bounded, kept across a stream's closing and
    /// reopening.
    keyframes: Arc<delivery::Keyframes>,
}

/// A stream handed to a request, and whether this request opened it.
pub struct Opened {
    pub stream: Arc<Stream>,
    pub created: bool,
}

impl Registry {
    pub fn new(settings: EncoderSettings, limits: Limits, budget: Budget) -> Registry {
        Registry {
            settings,
            limits,
            budget,
            streams: Mutex::new(HashMap::new()),
            keyframes: Arc::new(delivery::Keyframes::default()),
        }
    }

    pub fn settings(&self) -> &EncoderSettings {
        &self.settings
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The stream for `source`, opened if needed. Never blocks: the probe runs on a blocking
    /// thread and the stream reports its progress itself. Must be called within a tokio runtime.
    /// Places to run pipelines are taken by the stream when it needs them (a transcoded stream
    /// answers its first playlist once it has one; see `machine.rs`).
    pub fn open(&self, source: &Source, name: &str) -> Opened {
        self.open_part(source, name, Part::Main, None)
    }

    /// The alternate audio rendition of track `n` of the file whose main stream opened as
    /// `opening`: made on that opening's plan, so its segments line up with the video's.
    pub fn open_audio(
        &self,
        source: &Source,
        name: &str,
        opening: &Arc<Opening>,
        n: usize,
    ) -> Opened {
        let name = format!("{name} [audio {n}]");
        self.open_part(source, &name, Part::Audio(n), Some(opening.clone()))
    }

    fn open_part(
        &self,
        source: &Source,
        name: &str,
        part: Part,
        given: Option<Arc<Opening>>,
    ) -> Opened {
        let key = (source.clone(), part.clone());
        let mut streams = self.streams.lock();
        if let Some(stream) = streams.get(&key) {
            let outdated = match (stream.given(), &given) {
                (Some(was), Some(now)) => !Arc::ptr_eq(was, now),
                _ => false,
            };
            if stream.changed_on_disk() || outdated {
                tracing::info!(stream = %name, "the file changed on disk; reopening it");
                stream.stop_runs();
            } else if !stream.failed() {
                return Opened {
                    stream: stream.clone(),
                    created: false,
                };
            }
        }
        let stream = Arc::new(Stream::new(
            name.to_owned(),
            source.clone(),
            part,
            given,
            self.settings.clone(),
            self.limits,
            self.budget.clone(),
            self.keyframes.clone(),
        ));
        streams.insert(key, stream.clone());
        drop(streams);

        tracing::info!(stream = %name, "opening stream");
        let preparing = stream.clone();
        tokio::task::spawn_blocking(move || preparing.prepare());
        Opened {
            stream,
            created: true,
        }
    }

    /// Lets every stream make its time-based decisions; when one waits for a transcode place,
    /// streams nobody is using give theirs up.
    pub fn tick(&self) {
        let streams: Vec<_> = self.streams.lock().values().cloned().collect();
        for stream in &streams {
            stream.tick();
        }
        let needs: Vec<(bool, Duration)> = streams
            .iter()
            .map(|s| (s.wants_place(), s.idle()))
            .collect();
        for (index, room) in make_room(&needs) {
            let stream = &streams[index];
            match room {
                Room::StopAll => {
                    if stream.stop_runs() > 0 {
                        tracing::info!(stream = %stream.name(), "stopped a quiet stream's transcodes for another stream");
                    }
                }
                Room::GiveUpOne => stream.give_up_place(),
                // Takes a place that may have just been freed, without waiting for the next tick.
                Room::Retry => stream.tick(),
            }
        }
    }

    /// Closes streams idle for `timeout`: their pipelines stop and their memory is freed (once the
    /// requests still holding them finish).
    pub fn sweep(&self, timeout: Duration) {
        let closed: Vec<Arc<Stream>> = {
            let mut streams = self.streams.lock();
            let idle: Vec<(Source, Part)> = streams
                .iter()
                .filter(|(_, s)| s.idle() >= timeout)
                .map(|(key, _)| key.clone())
                .collect();
            idle.iter().filter_map(|s| streams.remove(s)).collect()
        };
        for stream in closed {
            tracing::info!(stream = %stream.name(), "closing idle stream");
            stream.stop_runs();
        }
    }

    /// Every stream, for status pages.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.lock().values().cloned().collect()
    }

    /// Stops every pipeline (at shutdown).
    pub fn clear(&self) {
        let streams: Vec<_> = self.streams.lock().drain().map(|(_, s)| s).collect();
        for stream in streams {
            stream.stop_runs();
        }
    }
}

/// What a stream is told to do while others wait for a transcode place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    /// It is quiet: stop every run.
    StopAll,
    /// Give up one run no request waits on and no viewer watches.
    GiveUpOne,
    /// It waits for a place: try again now that others made room.
    Retry,
}

/// Given each stream's (waiting for a place, idle time), what each must do, in order: nothing
/// while no stream waits; else quiet streams stop, the others give up a spare run, then the
/// waiting ones try again.
pub(super) fn make_room(streams: &[(bool, Duration)]) -> Vec<(usize, Room)> {
    if !streams.iter().any(|(wants, _)| *wants) {
        return Vec::new();
    }
    let giving = streams.iter().enumerate().filter(|(_, (wants, _))| !wants);
    let quiet = giving
        .clone()
        .filter(|(_, (_, idle))| *idle >= RECLAIM_AFTER);
    let busy = giving.filter(|(_, (_, idle))| *idle < RECLAIM_AFTER);
    let waiting = streams.iter().enumerate().filter(|(_, (wants, _))| *wants);
    quiet
        .map(|(i, _)| (i, Room::StopAll))
        .chain(busy.map(|(i, _)| (i, Room::GiveUpOne)))
        .chain(waiting.map(|(i, _)| (i, Room::Retry)))
        .collect()
}
