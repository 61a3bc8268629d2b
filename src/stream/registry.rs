//! The streams that exist: one per source, started once however many viewers ask at the same time.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Stream;
use crate::config::EncoderSettings;
use crate::library::Source;
use crate::transcode::{Transcode, TranscodeError};

pub struct Registry {
    settings: EncoderSettings,
    stream_memory: usize,
    streams: Mutex<HashMap<Source, Arc<Stream>>>,
}

impl Registry {
    pub fn new(settings: EncoderSettings, stream_memory: usize) -> Registry {
        Registry {
            settings,
            stream_memory,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// The stream for `source`, started if needed. Never blocks: the pipeline is built on a
    /// blocking thread and the stream reports its progress itself. Must be called within a
    /// tokio runtime.
    pub fn open(&self, source: &Source, name: &str) -> Arc<Stream> {
        let mut streams = self.streams.lock();
        if let Some(stream) = streams.get(source)
            && !stream.failed_empty()
        {
            return stream.clone();
        }
        let stream = Arc::new(Stream::new(
            name.to_owned(),
            self.settings.segment,
            self.stream_memory,
        ));
        streams.insert(source.clone(), stream.clone());
        drop(streams);

        tracing::info!(stream = %name, "starting stream");
        let (starting, source, settings) = (stream.clone(), source.clone(), self.settings.clone());
        tokio::task::spawn_blocking(move || {
            // A panic while building must not leave viewers waiting on a stream that never ends.
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Transcode::start(&source, &settings, starting.output())
            }));
            match started {
                Ok(Ok(transcode)) => starting.attach(transcode),
                Ok(Err(err)) => starting.fail_to_start(err),
                Err(_) => starting.fail_to_start(TranscodeError::Failed(
                    "internal error while building the pipeline".into(),
                )),
            }
        });
        stream
    }

    /// Stops every pipeline (at shutdown).
    pub fn clear(&self) {
        self.streams.lock().clear();
    }
}
