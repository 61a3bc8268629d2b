//! Loads the GStreamer plugins that probes and runs use before the first request, so the first viewer does not wait for them.

use std::time::{Duration, Instant};

use gst::prelude::*;

/// Elements a probe, a keyframe scan, a direct run or a transcode may plug, by factory name.
/// Their plugins are loaded (dlopen, and for libav its codec libraries) on first use, which
/// made a fresh server's first playlist about 0.1 s slower than later ones.
const ELEMENTS: [&str; 28] = [
    "filesrc",
    "typefind",
    "uridecodebin",
    "decodebin",
    "parsebin",
    "urisourcebin",
    "multiqueue",
    "queue",
    "capsfilter",
    "qtdemux",
    "matroskademux",
    "tsdemux",
    "flvdemux",
    "h264parse",
    "aacparse",
    "avdec_h264",
    "avdec_aac",
    "mpegtsmux",
    "appsink",
    "fakesink",
    "x264enc",
    "avenc_aac",
    "audioconvert",
    "audioresample",
    "videoconvert",
    "videoscale",
    "deinterlace",
    "videoflip",
];

/// Loads the typefinders and [`ELEMENTS`]' plugins; returns how long it took. One missing is
/// skipped: what needs it reports it when it is needed. Blocking; `gst::init` must have run.
pub fn warm_up() -> Duration {
    let started = Instant::now();
    for factory in gst::TypeFindFactory::factories() {
        let _ = factory.load();
    }
    for name in ELEMENTS {
        if let Some(factory) = gst::ElementFactory::find(name) {
            let _ = factory.load();
        }
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_are_loaded_afterwards() {
        gst::init().unwrap();
        warm_up();
        // Plugins no other unit test here uses, so nothing else can have loaded them.
        for name in ["flvdemux", "matroskademux", "deinterlace", "videoflip"] {
            let factory = gst::ElementFactory::find(name).expect(name);
            let plugin = factory.plugin().expect(name);
            assert!(plugin.is_loaded(), "{name}'s plugin is not loaded");
        }
    }
}
