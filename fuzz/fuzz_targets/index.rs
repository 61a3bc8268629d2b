//! Fuzz target: arbitrary bytes through the keyframe index, as MP4 and as Matroska, with tight limits.
#![no_main]

use std::io::Cursor;
use std::time::Duration;

use hlss::library::index::{self, Container, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Limits small enough that a slow or memory-hungry input shows as a timeout or an OOM here
    // rather than passing within the production limits.
    let limits = Limits {
        max_time: Duration::from_secs(1),
        max_box_bytes: 1 << 20,
        max_samples: 1 << 20,
        max_keyframes: 1 << 16,
        max_elements: 1 << 16,
    };
    let _ = index::index_reader(Cursor::new(data), &limits);
    for container in [Container::Mp4, Container::Matroska] {
        let _ = index::index_reader_as(container, Cursor::new(data), &limits);
    }
    // The public entry point with the default limits too: the sniffing path.
    let _ = index::index_bytes(data);
});
