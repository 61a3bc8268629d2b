//! Films with several audio tracks and subtitles (embedded SubRip, mov_text, sidecar files in UTF-8 and Latin-1), made with ffmpeg at test time.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::media::{cached_tree, lavfi_args, run_recipes};

/// H.264/AAC 640x360 (direct): English (440 Hz, stereo, default) and French (880 Hz, 5.1,
/// titled) audio; English and French SubRip inside; German (Latin-1) and Spanish forced
/// (WebVTT) sidecar files.
pub const FILM: &str = "film.mkv";
/// The same tracks but the video is 4:4:4 H.264 (transcoded) and the English audio AC-3.
pub const TRANSCODED: &str = "film444.mkv";
/// H.264/AAC MP4 with an English mov_text track.
pub const MOV_TEXT: &str = "movtext.mp4";
/// 12 s of a still picture, then 4 s of noise: a bit rate far from even (direct streams, in
/// MP4 and Matroska), to check BANDWIDTH against the real peak.
pub const UNEVEN_MP4: &str = "uneven.mp4";
pub const UNEVEN_MKV: &str = "uneven.mkv";
pub const UNEVEN_TS: &str = "uneven.ts";
/// Sound alone in two tracks (Matroska audio), the French one flagged default.
pub const SOUND: &str = "sound.mka";
/// H.264/AAC Matroska with a WebVTT track, which GStreamer 1.22's demuxer cannot read.
pub const WEBVTT_MKV: &str = "webvtt.mkv";

pub const SECONDS: f64 = 20.0;
/// Every audio track sounds and the picture flashes white only here, for [`FLASH_LENGTH`]: how
/// a test measures audio/video sync.
pub const FLASH_AT: f64 = 9.0;
pub const FLASH_LENGTH: f64 = 0.2;
/// The French track's title in the container.
pub const FRENCH_TITLE: &str = "Français 5.1";

/// One subtitle: start, end, text (as SubRip writes it).
pub type Line = (f64, f64, &'static str);

pub const ENGLISH_LINES: [Line; 3] = [
    (1.0, 2.5, "Hello <i>there</i> & you"),
    // Crosses the boundary at 4 s: in two segments.
    (3.5, 4.5, "Across a boundary"),
    (12.0, 13.0, "Later on"),
];
pub const FRENCH_LINES: [Line; 2] = [(1.0, 2.5, "Bonjour"), (12.0, 13.0, "Plus tard")];
pub const GERMAN_LINES: [Line; 1] = [(6.0, 7.5, "Grüße aus München")];
pub const SPANISH_LINES: [Line; 1] = [(8.0, 9.0, "¡Hola!")];
/// GStreamer's MP4 demuxer drops a track shorter than a fifth of the file (taken for a
/// preview), so the cues run to near the end, as a film's do.
pub const MOV_TEXT_LINES: [Line; 2] = [(2.0, 3.0, "From mov_text"), (18.0, 19.0, "The end")];

fn srt(lines: &[Line]) -> String {
    let clock = |t: f64| {
        let ms = (t * 1000.0).round() as u64;
        format!(
            "{:02}:{:02}:{:02},{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    lines
        .iter()
        .enumerate()
        .map(|(i, (from, to, text))| {
            format!("{}\n{} --> {}\n{text}\n\n", i + 1, clock(*from), clock(*to))
        })
        .collect()
}

fn vtt(lines: &[Line]) -> String {
    format!("WEBVTT\n\n{}", srt(lines).replace(',', "."))
}

/// The folder, generated on first use and cached like the other media trees.
pub fn tracks_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let texts = (
            srt(&ENGLISH_LINES),
            srt(&FRENCH_LINES),
            srt(&MOV_TEXT_LINES),
        );
        cached_tree("tracks", &(recipes(Path::new("")), &texts), |dir| {
            fs::write(dir.join("en.srt"), &texts.0).unwrap();
            fs::write(dir.join("fr.srt"), &texts.1).unwrap();
            fs::write(dir.join("mov.srt"), &texts.2).unwrap();
            fs::write(dir.join("mov.vtt"), vtt(&MOV_TEXT_LINES)).unwrap();
            run_recipes(dir, &recipes(dir));
            for name in ["en.srt", "fr.srt", "mov.srt", "mov.vtt"] {
                fs::remove_file(dir.join(name)).unwrap();
            }
            // A sidecar in Latin-1, as old subtitle files often are.
            let german: Vec<u8> = srt(&GERMAN_LINES).chars().map(|c| c as u8).collect();
            for film in [FILM, TRANSCODED] {
                let stem = film.trim_end_matches(".mkv");
                fs::write(dir.join(format!("{stem}.de.srt")), &german).unwrap();
                fs::write(
                    dir.join(format!("{stem}.es.forced.vtt")),
                    vtt(&SPANISH_LINES),
                )
                .unwrap();
            }
        })
    })
}

/// ffmpeg recipes; subtitle files are read from `dir`.
fn recipes(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let s = SECONDS;
    let flash = format!("between(t,{FLASH_AT},{})", FLASH_AT + FLASH_LENGTH);
    let picture = format!(
        "testsrc2=size=640x360:rate=25:duration={s},drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='{flash}'"
    );
    let beep = |freq: u32, layout: &str| {
        format!(
            "sine=frequency={freq}:sample_rate=48000:duration={s},volume=volume='if({flash},1,0)':eval=frame,aformat=channel_layouts={layout}"
        )
    };
    let english = beep(440, "stereo");
    let french = beep(880, "5.1");
    let sub = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let tracks = |video: &str, english_codec: &str| {
        let mut args = lavfi_args(&[&picture, &english, &french], "");
        for name in ["en.srt", "fr.srt"] {
            args.extend(["-i".into(), sub(name)]);
        }
        args.extend(
            format!(
                "-map 0 -map 1 -map 2 -map 3 -map 4 {video} -g 25 -keyint_min 25 -sc_threshold 0 \
                 -c:a:0 {english_codec} -c:a:1 aac -c:s srt \
                 -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre \
                 -disposition:a:0 default -disposition:a:1 0 \
                 -metadata:s:s:0 language=eng -metadata:s:s:1 language=fre"
            )
            .split_whitespace()
            .map(String::from),
        );
        args.extend(["-metadata:s:a:1".into(), format!("title={FRENCH_TITLE}")]);
        // A film's own title, which no track must take for its name.
        args.extend(["-metadata".into(), "title=The Film".into()]);
        args
    };
    let mut mov = lavfi_args(&[&picture, &english], "");
    mov.extend(["-i".into(), sub("mov.srt")]);
    mov.extend(
        "-map 0 -map 1 -map 2 -c:v libx264 -preset ultrafast -g 25 -c:a aac -c:s mov_text \
         -metadata:s:s:0 language=eng -metadata title=Film"
            .split_whitespace()
            .map(String::from),
    );
    let mut webvtt = lavfi_args(&[&picture, &english], "");
    webvtt.extend(["-i".into(), sub("mov.vtt")]);
    webvtt.extend(
        "-map 0 -map 1 -map 2 -c:v libx264 -preset ultrafast -g 25 -c:a aac -c:s webvtt"
            .split_whitespace()
            .map(String::from),
    );
    let uneven = lavfi_args(
        &[
            "color=c=gray:size=320x240:rate=25:duration=12",
            "testsrc2=size=320x240:rate=25:duration=4,noise=alls=100:allf=t",
            "sine=frequency=440:sample_rate=48000:duration=16",
        ],
        "-filter_complex [0:v][1:v]concat=n=2:v=1:a=0[v] -map [v] -map 2 -c:v libx264 \
         -preset ultrafast -pix_fmt yuv420p -g 25 -c:a aac",
    );
    let mut sound = lavfi_args(&[&english, &french], "");
    sound.extend(
        "-map 0 -map 1 -c:a aac -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre \
         -disposition:a:0 0 -disposition:a:1 default"
            .split_whitespace()
            .map(String::from),
    );
    vec![
        (
            FILM,
            tracks("-c:v libx264 -preset ultrafast -pix_fmt yuv420p", "aac"),
        ),
        (
            TRANSCODED,
            tracks("-c:v libx264 -preset ultrafast -pix_fmt yuv444p", "ac3"),
        ),
        (MOV_TEXT, mov),
        (WEBVTT_MKV, webvtt),
        (SOUND, sound),
        (UNEVEN_MP4, uneven.clone()),
        (UNEVEN_MKV, uneven.clone()),
        (UNEVEN_TS, uneven),
    ]
}
