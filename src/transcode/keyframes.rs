//! Forces an encoder keyframe at every segment boundary (k × segment duration of running time).

use gst::prelude::*;
use parking_lot::Mutex;

/// Installs a probe on `pad` (the pad that feeds the encoder) which sends a force-key-unit event
/// ahead of the first buffer at or past each boundary, as splitmuxsink does. Boundaries are in
/// running time, which every run anchors at the media's origin (see `timeline`), so a run
/// started anywhere in the file cuts on the same grid, and that grid starts where the media does.
pub fn force_at_boundaries(pad: &gst::Pad, period: gst::ClockTime) {
    let period_ns = period.nseconds().max(1);
    // Boundary index the next keyframe is due at; None until the first buffer.
    let next = Mutex::new(None::<u64>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        // A panic must not unwind into the streaming thread's C code; the buffer passes either way.
        super::guard::guard("the keyframe probe", || {
            on_buffer(pad, info, period_ns, &next)
        });
        gst::PadProbeReturn::Ok
    });
}

/// Sends a force-key-unit event ahead of `info`'s buffer if it is the first at or past the next
/// boundary.
fn on_buffer(pad: &gst::Pad, info: &gst::PadProbeInfo, period_ns: u64, next: &Mutex<Option<u64>>) {
    let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
        return;
    };
    let Some(running) = pad
        .sticky_event::<gst::event::Segment>(0)
        .and_then(|event| {
            event
                .segment()
                .downcast_ref::<gst::ClockTime>()
                .and_then(|segment| segment.to_running_time(pts))
        })
    else {
        // Outside the segment: the encoder drops it too.
        return;
    };
    let index = running.nseconds() / period_ns;
    let mut next = next.lock();
    let due = match *next {
        None => true,
        Some(boundary) => index >= boundary,
    };
    if due {
        *next = Some(index.saturating_add(1));
        // No running time: "key unit as soon as possible", i.e. the buffer about to pass.
        // (x264enc shifts its input timeline by 1000 h to keep DTS positive, so a running
        // time computed here would never match the encoder's.)
        let event = gst_video::DownstreamForceKeyUnitEvent::builder()
            .timestamp(pts)
            .stream_time(pts)
            .all_headers(true)
            .count(u32::try_from(index).unwrap_or(u32::MAX))
            .build();
        drop(next);
        pad.push_event(event);
    }
}
