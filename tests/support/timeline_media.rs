//! Files whose timeline does not start at 0 or whose subtitles outlast the picture, made with ffmpeg.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::media::{Clip, cached_tree};
use super::tools::run_with_timeout;

/// DVD-style MPEG-PS: MPEG-2 video and MP2 audio; ffmpeg's `vob` muxer starts it at about 0.53 s.
pub const DVD: Clip = Clip {
    rel: "dvd.mpg",
    video: true,
    audio: true,
};
/// DVB-style recording: interlaced (top field first) MPEG-2 and MP2 in MPEG-TS, starting at
/// about 1.44 s as ffmpeg's `mpegts` muxer makes it.
pub const DVB: Clip = Clip {
    rel: "dvb.ts",
    video: true,
    audio: true,
};
/// H.264/AAC for [`MP4_AV_SECONDS`] with a mov_text track running to [`MP4_SUBTITLE_END`].
pub const MP4_SUBS: Clip = Clip {
    rel: "subtitled.mp4",
    video: true,
    audio: true,
};
/// H.264/AAC for [`CLIP_SECONDS`] with an SRT track ending [`MKV_SUBTITLE_TAIL`] after the picture.
pub const MKV_SUBS: Clip = Clip {
    rel: "subtitled.mkv",
    video: true,
    audio: true,
};

/// H.264/AAC whose edit list starts the media late: ffmpeg's `-output_ts_offset` writes an
/// empty edit, which qtdemux plays as a gap before a segment whose media time starts at
/// [`EDIT_OFFSET`] (ffprobe: audio at 1.476 s, video at 1.5 s).
pub const MP4_EDIT: Clip = Clip {
    rel: "edit-list.mp4",
    video: true,
    audio: true,
};
pub const EDIT_OFFSET: f64 = 1.5;

/// Audio/video length of every file but [`MP4_SUBS`]: eight 2 s segments when the plan counts
/// from the first sample, a ninth stub when it counts from 0; enough for a run to start mid-file
/// rather than wait for the one from the start.
pub const CLIP_SECONDS: u32 = 16;
pub const MP4_AV_SECONDS: u32 = 20;
pub const MP4_SUBTITLE_END: f64 = 21.5;
pub const MKV_SUBTITLE_TAIL: f64 = 1.25;

/// The subtitle files' cues: (file name, SRT text).
fn subtitles() -> [(&'static str, String); 2] {
    // Two cues, the last one ending at `end` seconds.
    let cues = |end: f64| {
        let at = |t: f64| {
            let ms = (t * 1000.0).round() as u64;
            format!(
                "00:{:02}:{:02},{:03}",
                ms / 60_000,
                ms / 1000 % 60,
                ms % 1000
            )
        };
        format!(
            "1\n{} --> {}\nHello\n\n2\n{} --> {}\nStill talking\n\n",
            at(1.0),
            at(3.0),
            at(end - 3.0),
            at(end)
        )
    };
    [
        ("mp4.srt", cues(MP4_SUBTITLE_END)),
        ("mkv.srt", cues(f64::from(CLIP_SECONDS) + MKV_SUBTITLE_TAIL)),
    ]
}

/// (output, ffmpeg arguments between `-y` and the output); `{dir}` stands for the folder.
fn recipes() -> Vec<(&'static str, String)> {
    let s = CLIP_SECONDS;
    let sd = format!(
        "-f lavfi -i testsrc2=size=720x576:rate=25:duration={s} \
         -f lavfi -i sine=frequency=440:sample_rate=48000:duration={s}"
    );
    // 50 progressive frames a second woven into 25 interlaced ones, top field first.
    let interlaced = format!(
        "-f lavfi -i testsrc2=size=720x576:rate=50:duration={s} \
         -f lavfi -i sine=frequency=440:sample_rate=48000:duration={s} \
         -vf tinterlace=interleave_top,fieldorder=tff -flags +ilme+ildct -top 1"
    );
    let mpeg2 = "-c:v mpeg2video -b:v 3M -c:a mp2 -b:a 192k";
    let small = |seconds: u32, srt: &str| {
        format!(
            "-f lavfi -i testsrc2=size=320x240:rate=25:duration={seconds} \
             -f lavfi -i sine=frequency=440:sample_rate=48000:duration={seconds} \
             -i {{dir}}/{srt} -map 0 -map 1 -map 2 \
             -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 -c:a aac -b:a 96k"
        )
    };
    vec![
        (DVD.rel, format!("{sd} {mpeg2} -f vob")),
        (DVB.rel, format!("{interlaced} {mpeg2} -f mpegts")),
        (
            MP4_SUBS.rel,
            format!("{} -c:s mov_text", small(MP4_AV_SECONDS, "mp4.srt")),
        ),
        (
            MKV_SUBS.rel,
            format!("{} -c:s srt", small(CLIP_SECONDS, "mkv.srt")),
        ),
        (
            MP4_EDIT.rel,
            format!(
                "-f lavfi -i testsrc2=size=320x240:rate=25:duration={s} \
                 -f lavfi -i sine=frequency=440:sample_rate=48000:duration={s} \
                 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25 -c:a aac -b:a 96k \
                 -output_ts_offset {EDIT_OFFSET}"
            ),
        ),
    ]
}

/// The folder holding these files, generated on first use and cached like `media_root`.
pub fn timeline_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let (recipes, subtitles) = (recipes(), subtitles());
        cached_tree("timeline", &(&recipes, &subtitles), |dir| {
            for (name, text) in &subtitles {
                fs::write(dir.join(name), text).expect("write subtitles");
            }
            for (rel, args) in &recipes {
                let args = args.replace("{dir}", &dir.to_string_lossy());
                let run = run_with_timeout(
                    Command::new("ffmpeg")
                        .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
                        .args(args.split_whitespace())
                        .arg(dir.join(rel)),
                    std::time::Duration::from_secs(120),
                );
                assert!(run.success(), "ffmpeg making {rel}: {}", run.describe());
            }
            // Only the media stay: the server lists what it finds.
            for (name, _) in &subtitles {
                fs::remove_file(dir.join(name)).expect("remove subtitles");
            }
        })
    })
}

/// What ffprobe says about one stream of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbedStream {
    pub kind: String,
    pub start: f64,
    /// Where its last packet ends.
    pub end: f64,
}

/// Every stream of `path` by its packets: (codec_type, first PTS, end of the last packet), the
/// independent measure of where audio, video and subtitles begin and end.
pub fn probe_streams(path: &Path) -> Vec<ProbedStream> {
    let run = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_entries"])
            .args(["stream=index,codec_type:packet=stream_index,pts_time,duration_time"])
            .args(["-of", "csv"])
            .arg(path),
        std::time::Duration::from_secs(60),
    );
    assert!(run.success(), "ffprobe {path:?}: {}", run.describe());
    // Packets come before the streams that say what kind each index is.
    let mut kinds: Vec<(usize, String)> = Vec::new();
    let mut spans: Vec<(usize, f64, f64)> = Vec::new();
    for line in run.stdout.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        match fields.as_slice() {
            ["stream", index, kind, ..] => {
                kinds.push((index.parse().expect("stream index"), (*kind).to_owned()));
            }
            ["packet", index, pts, duration, ..] => {
                let (Ok(index), Ok(pts)) = (index.parse::<usize>(), pts.parse::<f64>()) else {
                    continue;
                };
                let end = pts + duration.parse::<f64>().unwrap_or(0.0);
                match spans.iter_mut().find(|(i, _, _)| *i == index) {
                    Some((_, start, last)) => {
                        *start = start.min(pts);
                        *last = last.max(end);
                    }
                    None => spans.push((index, pts, end)),
                }
            }
            _ => {}
        }
    }
    kinds
        .into_iter()
        .filter_map(|(index, kind)| {
            let &(_, start, end) = spans.iter().find(|(i, _, _)| *i == index)?;
            Some(ProbedStream { kind, start, end })
        })
        .collect()
}

/// From the first audio or video packet to the end of the last: what a player should play.
pub fn av_span(path: &Path) -> (f64, f64) {
    let av: Vec<ProbedStream> = probe_streams(path)
        .into_iter()
        .filter(|s| s.kind == "audio" || s.kind == "video")
        .collect();
    assert!(!av.is_empty(), "{path:?} has no audio or video");
    let start = av.iter().map(|s| s.start).fold(f64::INFINITY, f64::min);
    let end = av.iter().map(|s| s.end).fold(f64::NEG_INFINITY, f64::max);
    (start, end)
}
