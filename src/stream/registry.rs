//! The streams that exist: one per source, opened once however many viewers ask at the same time,
//! closed when nobody has watched for a while.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{Budget, Stream, StreamError};
use crate::config::{EncoderSettings, StreamLimits as Limits};
use crate::library::Source;

/// A stream nobody asked anything of for this long gives up its pipelines when another stream
/// needs a place under `--max-transcodes` (its segments stay until `--idle-timeout`).
pub const RECLAIM_AFTER: Duration = Duration::from_secs(5);

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

    /// The stream for `source`, opened if needed. Never blocks: the probe runs on a blocking
    /// thread and the stream reports its progress itself. Must be called within a tokio runtime.
    /// A new stream is refused while every transcode place is taken by streams in use.
    pub fn open(&self, source: &Source, name: &str) -> Result<Opened, StreamError> {
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
            tracing::info!(stream = %name, "refused: all transcodes busy");
            return Err(StreamError::Busy(self.budget.max_transcodes()));
        };
        let stream = Arc::new(Stream::new(
            name.to_owned(),
            source.clone(),
            self.settings.clone(),
            self.limits,
            self.budget.clone(),
        ));
        stream.reserve(permit);
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

    /// Stops the pipelines of streams nobody is using, so a busy one can have the place.
    /// Returns whether any place was freed.
    pub fn reclaim_idle(&self) -> bool {
        let streams: Vec<_> = self.streams.lock().values().cloned().collect();
        reclaim(streams.iter())
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
