//! The streams that exist: one per source, started once however many viewers ask at the same time.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::Stream;
use crate::config::{EncoderSettings, StreamLimits as Limits};
use crate::library::Source;

pub struct Registry {
    settings: EncoderSettings,
    limits: Limits,
    streams: Mutex<HashMap<Source, Arc<Stream>>>,
}

impl Registry {
    pub fn new(settings: EncoderSettings, limits: Limits) -> Registry {
        Registry {
            settings,
            limits,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// The stream for `source`, opened if needed. Never blocks: the probe runs on a blocking
    /// thread and the stream reports its progress itself. Must be called within a tokio runtime.
    pub fn open(&self, source: &Source, name: &str) -> Arc<Stream> {
        let mut streams = self.streams.lock();
        if let Some(stream) = streams.get(source)
            && !stream.failed()
        {
            return stream.clone();
        }
        let stream = Arc::new(Stream::new(
            name.to_owned(),
            source.clone(),
            self.settings.clone(),
            self.limits,
        ));
        streams.insert(source.clone(), stream.clone());
        drop(streams);

        tracing::info!(stream = %name, "opening stream");
        let preparing = stream.clone();
        tokio::task::spawn_blocking(move || preparing.prepare());
        stream
    }

    /// Every stream, for status pages.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        self.streams.lock().values().cloned().collect()
    }

    /// Stops every pipeline (at shutdown).
    pub fn clear(&self) {
        self.streams.lock().clear();
    }
}
