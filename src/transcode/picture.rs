//! Shapes the picture before encoding: deinterlacing, the source's orientation, the encoded size.

use gst::prelude::*;

use super::pipeline::make;
use super::{TranscodeError, guard};

/// The elements that turn a decoded picture into what the viewer should see, in order:
/// deinterlace (interlaced sources only) → videoconvert → videoflip (orientation tag) →
/// videoscale. The caller puts a capsfilter made by [`size_filter`] after them.
pub(super) fn display_chain() -> Result<[gst::Element; 4], TranscodeError> {
    let deinterlace = gst::ElementFactory::make("deinterlace")
        // `auto` leaves progressive frames alone and deinterlaces what caps or buffer flags mark
        // as interlaced, in the field order they give.
        .property_from_str("mode", "auto")
        // Interpolates the kept field: no state, no combing left. In GStreamer 1.22, with one
        // frame per source frame, the motion-adaptive methods fail on our test sources: yadif
        // gives two of the first frames one timestamp and makes extra frames, greedyh and
        // tomsmocomp leave TFF MPEG-2 combed, greedyl leaves stretches of TFF H.264 combed.
        .property_from_str("method", "linear")
        // One frame per source frame, not per field: 25i stays 25p, so the encoder's load and
        // the frame count match the source.
        .property_from_str("fields", "top")
        .build()
        .map_err(|_| TranscodeError::MissingElement("deinterlace"))?;
    let flip = gst::ElementFactory::make("videoflip")
        // Follows the `image-orientation` tag (phone videos' display matrix), rotations and flips.
        .property_from_str("video-direction", "auto")
        .build()
        .map_err(|_| TranscodeError::MissingElement("videoflip"))?;
    Ok([
        deinterlace,
        make("videoconvert")?,
        flip,
        make("videoscale")?,
    ])
}

/// A capsfilter for 8-bit 4:2:0 square pixels whose size [`follow_display_size`] keeps up to date.
pub(super) fn size_filter() -> Result<gst::Element, TranscodeError> {
    gst::ElementFactory::make("capsfilter")
        .property("caps", encoder_caps(None))
        .build()
        .map_err(|_| TranscodeError::MissingElement("capsfilter"))
}

fn encoder_caps(size: Option<(i32, i32)>) -> gst::Caps {
    let mut caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some((width, height)) = size {
        caps = caps.field("width", width).field("height", height);
    }
    caps.build()
}

/// Sets `filter`'s size from each caps event reaching `scale_sink` (videoscale's sink pad).
/// Those caps are the displayed picture: the orientation tag arrives after the decoder's first
/// caps, and videoflip then renegotiates with width and height swapped, so a size taken from
/// the decoder's caps would stream a portrait video squashed into landscape. Setting the
/// filter before videoscale handles the event makes videoscale negotiate the new size.
pub(super) fn follow_display_size(scale_sink: &gst::Pad, filter: &gst::Element, max_height: u32) {
    let filter = filter.downgrade();
    scale_sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
        guard::guard("the picture size probe", || {
            let Some(gst::EventView::Caps(event)) = info.event().map(|e| e.view()) else {
                return;
            };
            let (Some(filter), Some(size)) =
                (filter.upgrade(), output_size(event.caps(), max_height))
            else {
                return;
            };
            let caps = encoder_caps(Some(size));
            if filter.property::<Option<gst::Caps>>("caps").as_ref() != Some(&caps) {
                filter.set_property("caps", caps);
            }
        });
        gst::PadProbeReturn::Ok
    });
}

/// The encoded size for displayed `caps`: square pixels, at most `max_height` tall, even
/// dimensions (4:2:0 needs them). `None` when the caps do not say.
fn output_size(caps: &gst::CapsRef, max_height: u32) -> Option<(i32, i32)> {
    let s = caps.structure(0)?;
    let width = s.get::<i32>("width").ok()?;
    let height = s.get::<i32>("height").ok()?;
    let par = s
        .get::<gst::Fraction>("pixel-aspect-ratio")
        .unwrap_or_else(|_| gst::Fraction::new(1, 1));
    scaled_size(width, height, (par.numer(), par.denom()), max_height)
}

/// The size a transcode encodes `video` at: displayed size (pixel aspect and quarter turns
/// applied), at most `max_height` tall, even dimensions.
pub fn encoded_size(video: &super::VideoCodec, max_height: u32) -> Option<(u32, u32)> {
    let (width, height) = (
        i32::try_from(video.width).ok()?,
        i32::try_from(video.height).ok()?,
    );
    let par = (
        i32::try_from(video.par.0).ok()?,
        i32::try_from(video.par.1).ok()?,
    );
    let (width, height, par) = if video.quarter_turn {
        (height, width, (par.1, par.0))
    } else {
        (width, height, par)
    };
    let (w, h) = scaled_size(width, height, par, max_height)?;
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}

/// The H.264 level (`level_idc`, 10 times the level) of a `size` picture at `fps` and `kbps`:
/// the lowest whose frame size, macroblock rate and High-profile bit rate allow it. The encoder
/// is told it, so the stream says what the master playlist's CODECS says.
pub fn h264_level(size: (u32, u32), fps: f64, kbps: u32) -> u8 {
    // (level_idc, MaxFS in macroblocks, MaxMBPS, MaxBR in kb/s for Baseline/Main; High is 1.25 x)
    const LEVELS: [(u8, u64, u64, u64); 11] = [
        (30, 1_620, 40_500, 10_000),
        (31, 3_600, 108_000, 14_000),
        (32, 5_120, 216_000, 20_000),
        (40, 8_192, 245_760, 20_000),
        (41, 8_192, 245_760, 50_000),
        (42, 8_704, 522_240, 50_000),
        (50, 22_080, 589_824, 135_000),
        (51, 36_864, 983_040, 240_000),
        (52, 36_864, 2_073_600, 240_000),
        (60, 139_264, 4_177_920, 240_000),
        (62, 139_264, 16_711_680, 800_000),
    ];
    let macroblocks = u64::from(size.0.div_ceil(16)) * u64::from(size.1.div_ceil(16));
    let rate = (macroblocks as f64 * fps.max(1.0)).ceil() as u64;
    LEVELS
        .iter()
        .find(|(_, fs, mbps, br)| {
            macroblocks <= *fs && rate <= *mbps && u64::from(kbps) * 4 <= br * 5
        })
        .map_or(62, |l| l.0)
}

fn scaled_size(width: i32, height: i32, par: (i32, i32), max_height: u32) -> Option<(i32, i32)> {
    if width <= 0 || height <= 0 || par.0 <= 0 || par.1 <= 0 {
        return None;
    }
    let display_width = f64::from(width) * f64::from(par.0) / f64::from(par.1);
    let out_height = f64::from(height).min(f64::from(max_height));
    let out_width = display_width * out_height / f64::from(height);
    let even = |v: f64| ((v / 2.0).round() as i32).max(1) * 2;
    Some((even(out_width), even(out_height)))
}

#[cfg(test)]
mod tests {
    use super::{h264_level, scaled_size};

    #[test]
    fn levels_follow_size_and_rate() {
        assert_eq!(h264_level((1280, 720), 30.0, 3000), 31);
        assert_eq!(h264_level((1280, 720), 60.0, 3000), 32);
        assert_eq!(h264_level((1920, 1080), 30.0, 5000), 40);
        assert_eq!(h264_level((1920, 1080), 30.0, 30000), 41);
        assert_eq!(h264_level((640, 360), 25.0, 1000), 30);
        assert_eq!(h264_level((3840, 2160), 30.0, 20000), 51);
    }

    #[test]
    fn scales_down_to_max_height_keeping_aspect() {
        assert_eq!(scaled_size(1920, 1080, (1, 1), 720), Some((1280, 720)));
        assert_eq!(scaled_size(640, 360, (1, 1), 720), Some((640, 360)));
        // Anamorphic DVD: 720x576 with 16:15 pixels displays as 768x576.
        assert_eq!(scaled_size(720, 576, (16, 15), 720), Some((768, 576)));
        assert_eq!(scaled_size(321, 241, (1, 1), 720), Some((322, 242)));
        assert_eq!(scaled_size(0, 10, (1, 1), 720), None);
    }

    #[test]
    fn max_height_applies_to_the_displayed_height() {
        // A 1920x1080 phone video turned upright displays as 1080x1920.
        assert_eq!(scaled_size(1080, 1920, (1, 1), 720), Some((406, 720)));
    }
}
