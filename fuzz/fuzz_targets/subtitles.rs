//! Fuzz target: arbitrary bytes as SubRip, WebVTT and ASS files, and their cues written back as WebVTT segments.
#![no_main]

use std::time::Duration;

use hlss::subtitles::{self, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::SubRip, Format::WebVtt, Format::Ass] {
        let Ok(cues) = subtitles::parse(data, format) else {
            continue;
        };
        // What parse promises: cues sorted by start, each ending after it starts, bounded.
        assert!(cues.len() <= subtitles::MAX_CUES);
        assert!(cues.windows(2).all(|w| w[0].start <= w[1].start));
        assert!(cues.iter().all(|c| c.end > c.start));
        let end = cues.iter().map(|c| c.end).max().unwrap_or_default();
        let segment = Duration::from_secs(2);
        let mut from = Duration::ZERO;
        // A few segments only: a cue at hour 100 must not make the target write 180000.
        for _ in 0..4 {
            let doc = subtitles::segment(&cues, from, from + segment, 324_000_000);
            assert!(doc.starts_with("WEBVTT\n"));
            // A blank line inside a cue's text would end the cue early.
            let body = doc.split_once("\n\n").map_or("", |(_, b)| b);
            for block in body.split("\n\n").filter(|b| !b.is_empty()) {
                assert!(block.contains(" --> "), "{block:?}");
            }
            from = (from + segment).max(end.saturating_sub(segment * 2));
        }
    }
});
