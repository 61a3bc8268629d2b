//! One stream's state: its transcode, its ring of segments and the readiness viewers wait on.

mod registry;
mod ring;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

pub use registry::Registry;
pub use ring::Stored;

use crate::segmenter::Segment;
use crate::transcode::{Output, Transcode, TranscodeError};
use ring::Ring;

/// Segments a first playlist request waits for before answering (players want three to start).
pub const READY_SEGMENTS: u64 = 3;
/// Longest a playlist request waits for the first segments before answering 503.
pub const PLAYLIST_WAIT: Duration = Duration::from_secs(30);
/// Longest a request for a segment not yet made waits for it.
pub const SEGMENT_WAIT: Duration = Duration::from_secs(30);
/// How far past the newest segment a request may ask and still wait (instead of 404).
pub const SEGMENT_WAIT_AHEAD: u64 = 3;

/// How far the transcode has got; published through a `watch` so waiters never miss a change.
#[derive(Debug, Clone, Default)]
struct Progress {
    made: u64,
    end: Option<Result<(), TranscodeError>>,
}

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
}

/// What a playlist is written from: a consistent copy taken under one lock.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub target_duration: u64,
    pub first_sequence: u64,
    pub segments: Vec<(u64, Duration)>,
    pub ended: bool,
}

/// State shared with the transcode's threads.
struct Shared {
    name: String,
    ring: Mutex<Ring>,
    progress: watch::Sender<Progress>,
}

pub struct Stream {
    shared: Arc<Shared>,
    target_duration: u64,
    transcode: Mutex<Option<Transcode>>,
}

/// The transcode's view of a stream. It holds the stream weakly: the pipeline's callbacks must
/// not keep alive the stream that owns the pipeline.
struct Feed(Weak<Shared>);

impl Output for Feed {
    fn segment(&self, segment: Segment) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let made = {
            let mut ring = shared.ring.lock();
            ring.push(Stored {
                sequence: segment.sequence,
                duration: segment.duration,
                bytes: segment.bytes,
            });
            ring.made()
        };
        shared.progress.send_modify(|p| p.made = made);
    }

    fn end(&self, result: Result<(), TranscodeError>) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let (made, held) = {
            let ring = shared.ring.lock();
            (ring.made(), ring.bytes())
        };
        match &result {
            Ok(()) => tracing::info!(
                stream = %shared.name,
                segments = made,
                bytes_held = held,
                "stream complete"
            ),
            Err(err) if made == 0 => {
                tracing::warn!(stream = %shared.name, "stream failed to start: {err}")
            }
            Err(err) => tracing::warn!(
                stream = %shared.name,
                segments = made,
                "stream failed; playlist ends at the last good segment: {err}"
            ),
        }
        shared.progress.send_modify(|p| p.end = Some(result));
    }
}

impl Stream {
    pub(crate) fn new(name: String, segment: Duration, memory_budget: usize) -> Stream {
        let (progress, _) = watch::channel(Progress::default());
        Stream {
            shared: Arc::new(Shared {
                name,
                ring: Mutex::new(Ring::new(memory_budget)),
                progress,
            }),
            // EXTINF values are measured, and a keyframe lands at most one frame after its
            // boundary, so segments round to the configured duration (ceil for fractional ones).
            target_duration: segment.as_secs_f64().ceil().max(1.0) as u64,
            transcode: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The callback sink a transcode for this stream writes to.
    pub(crate) fn output(&self) -> Arc<dyn Output> {
        Arc::new(Feed(Arc::downgrade(&self.shared)))
    }

    pub(crate) fn attach(&self, transcode: Transcode) {
        *self.transcode.lock() = Some(transcode);
    }

    /// Reports a transcode that could not even be built.
    pub(crate) fn fail_to_start(&self, err: TranscodeError) {
        self.output().end(Err(err));
    }

    /// True when the stream ended without producing anything, so a new request should retry.
    pub(crate) fn failed_empty(&self) -> bool {
        let progress = self.shared.progress.borrow();
        progress.made == 0 && matches!(progress.end, Some(Err(_)))
    }

    /// Waits until the first segments exist or the stream ended, then reports whether it can be played.
    pub async fn wait_ready(&self) -> Result<(), StreamError> {
        let mut rx = self.shared.progress.subscribe();
        let ready = tokio::time::timeout(
            PLAYLIST_WAIT,
            rx.wait_for(|p| p.made >= READY_SEGMENTS || p.end.is_some()),
        )
        .await;
        match ready {
            Err(_) => Err(StreamError::NotReady),
            // The sender lives as long as the stream, which we hold.
            Ok(Err(_)) => Err(StreamError::NotReady),
            Ok(Ok(progress)) => match &progress.end {
                Some(Err(err)) if progress.made == 0 => Err(err.clone().into()),
                _ => Ok(()),
            },
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let ended = self.shared.progress.borrow().end.is_some();
        let ring = self.shared.ring.lock();
        Snapshot {
            target_duration: self.target_duration,
            first_sequence: ring.first_sequence(),
            segments: ring.iter().map(|s| (s.sequence, s.duration)).collect(),
            ended,
        }
    }

    /// Segment `sequence`: at once from memory, or after waiting for it when it is about to be made.
    pub async fn segment(&self, sequence: u64) -> Result<Bytes, StreamError> {
        let mut rx = self.shared.progress.subscribe();
        let made = {
            let progress = rx.borrow_and_update();
            if progress.made <= sequence
                && (progress.end.is_some() || sequence >= progress.made + SEGMENT_WAIT_AHEAD)
            {
                return Err(StreamError::NoSuchSegment);
            }
            progress.made
        };
        if made <= sequence {
            let waited = tokio::time::timeout(
                SEGMENT_WAIT,
                rx.wait_for(|p| p.made > sequence || p.end.is_some()),
            )
            .await;
            if waited.is_err() {
                return Err(StreamError::NotReady);
            }
        }
        let ring = self.shared.ring.lock();
        match ring.get(sequence) {
            Some(stored) => Ok(stored.bytes.clone()),
            None if sequence < ring.first_sequence() => Err(StreamError::Evicted(sequence)),
            None => Err(StreamError::NoSuchSegment),
        }
    }
}
