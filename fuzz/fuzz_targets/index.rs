//! Fuzz target: arbitrary bytes through the keyframe index (as MP4 and as Matroska), the track labels and the keyframe byte positions, with tight limits.
#![no_main]

use std::io::Cursor;
use std::time::Duration;

use hlss::library::index::{self, Container, Index, IndexError, Limits};
use libfuzzer_sys::fuzz_target;

/// What every index promises, whatever the input: a real timescale, end not before start,
/// keyframes ascending without duplicates.
fn check(result: Result<Index, IndexError>) {
    let Ok(ix) = result else { return };
    if let Some(v) = &ix.video {
        assert!(v.timescale > 0 && v.end >= v.start);
        assert!(v.keyframes.windows(2).all(|w| w[0] < w[1]));
    }
    if let Some(a) = &ix.audio {
        assert!(a.timescale > 0);
    }
}

fuzz_target!(|data: &[u8]| {
    // Limits small enough that a slow or memory-hungry input shows as a timeout or an OOM here
    // rather than passing within the production limits. (The defaults let an input walk 16 million
    // declared samples: about 40 ms in release, but seconds under ASan, which starves the fuzzer.)
    let limits = Limits {
        max_time: Duration::from_secs(1),
        max_box_bytes: 1 << 20,
        max_samples: 1 << 20,
        max_keyframes: 1 << 16,
        max_elements: 1 << 16,
    };
    check(index::index_reader(Cursor::new(data), &limits));
    for container in [Container::Mp4, Container::Matroska] {
        check(index::index_reader_as(container, Cursor::new(data), &limits));
    }
    // Track labels (languages for listings) read the same headers another way.
    if let Ok(labels) = index::track_labels_reader(Cursor::new(data), &limits) {
        assert!(labels.len() <= 1 << 16);
    }
    // Keyframe byte positions (a direct stream's peak bit rate) walk the sample tables again.
    if let Ok(offsets) = index::keyframe_offsets_reader(Cursor::new(data), &limits) {
        assert!(!offsets.keyframes.is_empty() && offsets.keyframes.len() <= limits.max_keyframes);
    }
});
