//! Files of the kinds people keep, made with ffmpeg at test time: rotated, interlaced, 10-bit, surround, late audio, VFR, sparse keyframes, 2 h, 4K.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::media::{Clip, cached_tree, lavfi_args, run_recipes};

const fn clip(rel: &'static str) -> Clip {
    Clip {
        rel,
        video: true,
        audio: true,
    }
}

/// A phone video: stored 1280x720, display matrix rotated 90° clockwise (ffprobe: rotation=-90).
/// The top quarter of the stored picture is white, so after turning it is the right quarter.
pub const PORTRAIT: Clip = clip("portrait.mp4");
/// Stored 320x180 with a mirrored display matrix (GStreamer: flip-rotate-0); the top left
/// block (a quarter wide, half high) of the stored picture is white, so the displayed picture
/// has it top right.
pub const MIRRORED: Clip = clip("mirrored.mp4");
/// MPEG-2, 720x576, 25 frames/s interlaced top field first (as from a DVB or DVD source).
pub const INTERLACED: Clip = clip("interlaced_tff.mkv");
/// Like [`INTERLACED`] but bottom field first (as DV and some DVB channels).
pub const INTERLACED_BFF: Clip = clip("interlaced_bff.mkv");
/// H.264 coded as interlaced, top field first (DVB HD style), same picture as [`INTERLACED`].
pub const INTERLACED_H264: Clip = clip("interlaced_tff_h264.mkv");
/// The same picture and codec as [`INTERLACED`], progressive.
pub const PROGRESSIVE: Clip = clip("progressive.mkv");
/// H.264 High 10 (yuv420p10le).
pub const HIGH10: Clip = clip("high10.mkv");
/// HEVC Main 10.
pub const HEVC10: Clip = clip("hevc_main10.mkv");
/// 5.1 surround in AC-3, E-AC-3 and DTS.
pub const AC3_51: Clip = clip("surround_ac3.mkv");
pub const EAC3_51: Clip = clip("surround_eac3.mkv");
pub const DTS_51: Clip = clip("surround_dts.mkv");
/// Audio that starts [`LATE_AUDIO_SECONDS`] after the picture, in MP4 (edit list) and Matroska.
pub const LATE_AUDIO_MP4: Clip = clip("late_audio.mp4");
pub const LATE_AUDIO_MKV: Clip = clip("late_audio.mkv");
/// 2 s at 25 frames/s, then 10 s at 10 frames/s (timestamps as ffmpeg rounds them: 40, 80 and
/// 120 ms apart), in Matroska, which stores each frame's time.
pub const VFR: Clip = clip("vfr.mkv");
/// A keyframe only every [`SPARSE_GOP_SECONDS`]: every other segment starts inside a GOP.
pub const SPARSE_KEYFRAMES: Clip = clip("sparse_keyframes.mp4");
/// [`TWO_HOURS_SECONDS`] of a small grey picture at [`TWO_HOURS_FPS`] with silent audio: quick to
/// make (a few seconds) and to transcode anywhere in it.
pub const TWO_HOURS: Clip = clip("two_hours.mkv");
/// A short 3840x2160 clip.
pub const UHD: Clip = clip("uhd.mp4");

pub const LATE_AUDIO_SECONDS: f64 = 1.5;
pub const SPARSE_GOP_SECONDS: u32 = 10;
pub const TWO_HOURS_SECONDS: u32 = 7200;
pub const TWO_HOURS_FPS: u32 = 5;

/// Length of the short clips.
const SECONDS: u32 = 6;

/// A 3x3 MP4/QuickTime display matrix in 16.16 fixed point (the last column 2.30), row by row.
type Matrix = [i32; 9];
const ROTATE_90: Matrix = [0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x4000_0000];
const MIRROR: Matrix = [-0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000];

/// How each file is made: its name and the ffmpeg arguments between `-y` and the output.
fn recipes() -> Vec<(&'static str, Vec<String>)> {
    let s = SECONDS;
    let sine = |secs: f64| format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let surround = format!("{},aformat=channel_layouts=5.1", sine(f64::from(s)));
    let x264 = "-c:v libx264 -preset ultrafast";
    let stereo = sine(f64::from(s));
    let small = format!("testsrc2=size=640x360:rate=25:duration={s}");
    let sd = format!("testsrc2=size=720x576:rate=50:duration={s}");
    let mpeg2 = "-c:v mpeg2video -b:v 4M -g 12 -c:a mp2 -b:a 192k";
    // Two frames of 50 p woven into one frame of 25 i, top field first.
    let weave = "tinterlace=mode=interleave_top,setfield=tff";
    // A white box over one quarter of the stored picture shows where it ends up.
    let marked = |size: &str, box_: &str| {
        format!("color=c=black:size={size}:rate=25:duration=3,drawbox={box_}:color=white:t=fill")
    };
    let mut late = lavfi_args(&[&small], "");
    late.extend(["-itsoffset".into(), LATE_AUDIO_SECONDS.to_string()]);
    late.extend(lavfi_args(
        &[&sine(f64::from(s) - LATE_AUDIO_SECONDS)],
        &format!("{x264} -c:a aac"),
    ));
    let h = TWO_HOURS_SECONDS;
    vec![
        (
            PORTRAIT.rel,
            lavfi_args(
                &[&marked("1280x720", "x=0:y=0:w=iw:h=ih/4"), &sine(3.0)],
                &format!("{x264} -c:a aac"),
            ),
        ),
        (
            MIRRORED.rel,
            lavfi_args(
                &[&marked("320x180", "x=0:y=0:w=iw/4:h=ih/2"), &sine(3.0)],
                &format!("{x264} -c:a aac"),
            ),
        ),
        (
            INTERLACED.rel,
            lavfi_args(
                &[&sd, &stereo],
                &format!("-vf {weave} -flags +ilme+ildct -top 1 {mpeg2}"),
            ),
        ),
        (
            INTERLACED_BFF.rel,
            lavfi_args(
                &[&sd, &stereo],
                &format!(
                    "-vf tinterlace=mode=interleave_bottom,setfield=bff -flags +ilme+ildct \
                     -top 0 {mpeg2}"
                ),
            ),
        ),
        (
            INTERLACED_H264.rel,
            lavfi_args(
                &[&sd, &stereo],
                &format!("-vf {weave} -flags +ilme+ildct {x264} -x264opts tff=1 -c:a aac"),
            ),
        ),
        (
            PROGRESSIVE.rel,
            lavfi_args(&[&sd, &stereo], &format!("-r 25 {mpeg2}")),
        ),
        (
            HIGH10.rel,
            lavfi_args(
                &[&small, &stereo],
                &format!("{x264} -pix_fmt yuv420p10le -c:a aac"),
            ),
        ),
        (
            HEVC10.rel,
            lavfi_args(
                &[&small, &stereo],
                "-c:v libx265 -preset ultrafast -x265-params log-level=error \
                 -pix_fmt yuv420p10le -c:a aac",
            ),
        ),
        (
            AC3_51.rel,
            lavfi_args(&[&small, &surround], &format!("{x264} -c:a ac3")),
        ),
        (
            EAC3_51.rel,
            lavfi_args(&[&small, &surround], &format!("{x264} -c:a eac3")),
        ),
        (
            DTS_51.rel,
            // ffmpeg's DTS encoder is marked experimental.
            lavfi_args(&[&small, &surround], &format!("{x264} -strict -2 -c:a dca")),
        ),
        (LATE_AUDIO_MP4.rel, late.clone()),
        (LATE_AUDIO_MKV.rel, late),
        (
            VFR.rel,
            lavfi_args(
                &[&small, &sine(12.0)],
                &format!(
                    "-vf setpts='if(lt(N,50),N/25,2+(N-50)/10)/TB' -fps_mode vfr {x264} -c:a aac"
                ),
            ),
        ),
        (
            SPARSE_KEYFRAMES.rel,
            lavfi_args(
                &["testsrc2=size=640x360:rate=25:duration=25", &sine(25.0)],
                &format!(
                    "{x264} -g {g} -keyint_min {g} -sc_threshold 0 -c:a aac",
                    g = SPARSE_GOP_SECONDS * 25
                ),
            ),
        ),
        (
            TWO_HOURS.rel,
            lavfi_args(
                &[
                    &format!("color=c=gray:size=160x90:rate={TWO_HOURS_FPS}:duration={h}"),
                    "anullsrc=r=8000:cl=mono",
                ],
                &format!("-t {h} {x264} -g 50 -c:a aac -b:a 16k"),
            ),
        ),
        (
            UHD.rel,
            lavfi_args(
                &["testsrc2=size=3840x2160:rate=25:duration=2.5", &sine(2.5)],
                &format!("{x264} -c:a aac"),
            ),
        ),
    ]
}

/// Files whose display matrix is rewritten after ffmpeg made them: ffmpeg 5.1 writes no
/// rotation of its own (`-metadata:s:v rotate` is gone, `-display_rotation` is 6.0).
const MATRICES: [(&str, Matrix); 2] = [(PORTRAIT.rel, ROTATE_90), (MIRRORED.rel, MIRROR)];

/// The folder of real-world files, generated on first use and cached like `media_root`.
pub fn real_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let recipes = recipes();
        cached_tree("real", &(&recipes, MATRICES), |dir| {
            run_recipes(dir, &recipes);
            for (rel, matrix) in MATRICES {
                set_display_matrix(&dir.join(rel), &matrix)
                    .unwrap_or_else(|e| panic!("{rel}: {e}"));
            }
        })
    })
}

/// Rewrites the matrix of the first track header (`tkhd`) of an MP4 in place. The box is found
/// by name: good enough for the files ffmpeg writes here, whose first track is the video.
fn set_display_matrix(path: &Path, matrix: &Matrix) -> Result<(), String> {
    let mut bytes = fs::read(path).map_err(|e| e.to_string())?;
    let name = bytes
        .windows(4)
        .position(|w| w == b"tkhd")
        .ok_or("no tkhd box")?;
    // After the name: version and flags (4), times, track id and duration (20 in version 0,
    // 32 in version 1), reserved (8), layer, group, volume and reserved (8), then the matrix.
    let version = *bytes.get(name + 4).ok_or("truncated tkhd")?;
    let start = name + 4 + 4 + if version == 1 { 32 } else { 20 } + 8 + 8;
    let target = bytes
        .get_mut(start..start + 36)
        .ok_or("truncated tkhd matrix")?;
    for (slot, value) in target.chunks_exact_mut(4).zip(matrix) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
    fs::write(path, bytes).map_err(|e| e.to_string())
}
