//! One run's pipeline: started off the async runtime, its segments and end fed to the machine,
//! its streaming thread held at a gate while the machine has it paused.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::machine::{Event, RunId};
use super::{Body, Shared};
use crate::segmenter::Segment;
use crate::transcode::{DirectAudio, Output, Pick, Transcode, TranscodeError};

/// How a run makes its segments.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// Decoded and encoded.
    Transcode(Pick),
    /// The source's H.264 passed through; its audio as [`DirectAudio`] says.
    Direct(Pick, DirectAudio),
    /// One audio track alone, passed through when `true`, else encoded.
    Audio(Pick, bool),
}

/// How often a held streaming thread looks again at its gate (opening it also wakes it).
const GATE_POLL: Duration = Duration::from_millis(500);

/// Where a run's streaming thread waits while the run is paused.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    paused: bool,
    stopped: bool,
    /// The pipeline, once built (building blocks, so it happens on a thread of its own).
    transcode: Option<Transcode>,
}

impl Gate {
    fn wait(&self) {
        let mut state = self.state.lock();
        while state.paused && !state.stopped {
            self.changed.wait_for(&mut state, GATE_POLL);
        }
    }
}

/// The owner's side of a run.
pub(super) struct Handle {
    gate: Arc<Gate>,
}

impl Handle {
    pub(super) fn pause(&self) {
        self.gate.state.lock().paused = true;
    }

    pub(super) fn resume(&self) {
        self.gate.state.lock().paused = false;
        self.gate.changed.notify_all();
    }

    /// Stops the pipeline (asynchronously: dropping a `Transcode` asks its bus thread to stop it)
    /// and lets its streaming thread go.
    pub(super) fn stop(self) {
        let transcode = {
            let mut state = self.gate.state.lock();
            state.stopped = true;
            state.transcode.take()
        };
        self.gate.changed.notify_all();
        drop(transcode);
    }
}

/// Starts run `id` at media time `at` of a plan starting at `origin` (see `Action::Start`), on
/// a thread of its own, as `kind` says.
pub(super) fn start(
    shared: &Arc<Shared>,
    id: RunId,
    at: Duration,
    origin: Option<Duration>,
    kind: Kind,
) -> Result<Handle, TranscodeError> {
    let gate = Arc::new(Gate::default());
    let output: Arc<dyn Output> = Arc::new(Feed {
        shared: Arc::downgrade(shared),
        run: id,
        gate: gate.clone(),
    });
    let (source, settings) = (shared.source.clone(), shared.settings.clone());
    let building = gate.clone();
    let spawned = std::thread::Builder::new()
        .name("hlss-start".into())
        .spawn(move || {
            let out = output.clone();
            let started = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &kind {
                Kind::Direct(pick, audio) => {
                    let origin = origin.unwrap_or(at);
                    Transcode::start_direct(&source, &settings, pick, *audio, at, origin, out)
                }
                Kind::Audio(pick, pass) => {
                    let origin = origin.unwrap_or(at);
                    Transcode::start_audio(&source, &settings, pick, *pass, at, origin, out)
                }
                Kind::Transcode(pick) => {
                    Transcode::start(&source, &settings, pick, at, origin, out)
                }
            }));
            match started {
                Ok(Ok(transcode)) => {
                    let mut state = building.state.lock();
                    if !state.stopped {
                        state.transcode = Some(transcode);
                    }
                    // Stopped while starting: dropping it (outside the lock) stops it.
                }
                Ok(Err(err)) => output.end(Err(err)),
                Err(_) => output.end(Err(TranscodeError::Failed(
                    "internal error while building the pipeline".into(),
                ))),
            }
        });
    spawned
        .map(|_| Handle { gate })
        .map_err(|err| TranscodeError::Failed(format!("cannot start a thread: {err}")))
}

/// A run's view of its stream. It holds the stream weakly: the pipeline's callbacks must not
/// keep alive the stream that owns the pipeline.
struct Feed {
    shared: Weak<Shared>,
    run: RunId,
    gate: Arc<Gate>,
}

impl Output for Feed {
    fn segment(&self, segment: Segment) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        // Hashing the bytes here keeps it off the async runtime and outside the lock.
        let body = Body::new(segment.bytes);
        shared.handle(Event::Produced {
            run: self.run,
            sequence: segment.sequence,
            duration: segment.duration,
            body,
        });
        drop(shared);
        // Holding the streaming thread stalls the pipeline at no CPU cost.
        self.gate.wait();
    }

    fn end(&self, result: Result<(), TranscodeError>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.handle(Event::Ended {
                run: self.run,
                result,
            });
        }
    }
}
