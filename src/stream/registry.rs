//! The streams that exist: one per source, opened once however many viewers ask at the same time,
//! closed when nobody has watched for a while.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Budget, Stream, StreamError};
use crate::config::{EncoderSettings, StreamLimits as Limits};
use crate::library::Source;

/// A stream nobody asked anything of for this long gives up its pipelines when another stream
/// needs a place under `--max-transcodes` (its segments stay until `--idle-timeout`). A player
/// that is playing asks for a segment at least every segment duration.
pub const RECLAIM_AFTER: Duration = Duration::from_secs(4);
/// Longest a new stream waits for a place held by streams whose viewers went quiet (someone
/// clicking through a folder), before it is refused as busy.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(6);
/// How often a waiting new stream looks for a place again.
const ADMISSION_POLL: Duration = Duration::from_millis(100);

pub struct Registry {
    settings: EncoderSettings,
    limits: Limits,
    budget: Budget,
    streams: Mutex<HashMap<Source, Arc<Stream>>>,
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
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The stream for `source`, opened if needed: the probe runs on a blocking thread and the
    /// stream reports its progress itself. A new stream needs a transcode place; when every place
    /// is taken it waits up to [`ADMISSION_WAIT`] for streams nobody asks anything of to give
    /// theirs up, then is refused as busy.
    pub async fn open(&self, source: &Source, name: &str) -> Result<Opened, StreamError> {
        let deadline = Instant::now() + ADMISSION_WAIT;
        loop {
            match self.try_open(source, name) {
                Err(StreamError::Busy(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(ADMISSION_POLL).await;
                }
                other => return other,
            }
        }
    }

    fn try_open(&self, source: &Source, name: &str) -> Result<Opened, StreamError> {
        let mut streams = self.streams.lock();
        if let Some(stream) = streams.get(source) {
            if stream.changed_on_disk() {
                tracing::info!(stream = %name, "the file changed on disk; reopening it");
                stream.stop_runs();
            } else if !stream.failed() {
                return Ok(Opened {
                    stream: stream.clone(),
                    created: false,
                });
            }
        }
        // The place for the new stream's first pipeline is taken now, so that many streams
        // opened at once cannot all get past this check before any pipeline starts.
        let permit = self.budget.try_transcode().or_else(|| {
            reclaim(streams.values())
                .then(|| self.budget.try_transcode())
                .flatten()
        });
        let Some(permit) = permit else {
            return Err(StreamError::Busy(self.budget.max_transcodes()));
        };
        let stream = Arc::new(Stream::new(
            name.to_owned(),
            source.clone(),
            self.settings.clone(),
            self.limits,
            self.budget.clone(),
            Some(permit),
        ));
        streams.insert(source.clone(), stream.clone());
        drop(streams);

        tracing::info!(stream = %name, "opening stream");
        let preparing = stream.clone();
        tokio::task::spawn_blocking(move || preparing.prepare());
        Ok(Opened {
            stream,
            created: true,
        })
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
            let idle: Vec<Source> = streams
                .iter()
                .filter(|(_, s)| s.idle() >= timeout)
                .map(|(source, _)| source.clone())
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
    /// Give up one run no request waits on.
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

fn reclaim<'a>(streams: impl Iterator<Item = &'a Arc<Stream>>) -> bool {
    let mut freed = 0;
    for stream in streams {
        if stream.idle() >= RECLAIM_AFTER {
            let stopped = stream.stop_runs();
            if stopped > 0 {
                tracing::info!(stream = %stream.name(), "stopped idle stream's transcodes for another stream");
            }
            freed += stopped;
        }
    }
    freed > 0
}
