//! Test media made with ffmpeg once per recipe and cached under cargo's test temp dir.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A file in the media tree and the streams it has.
#[derive(Debug, Clone, Copy)]
pub struct Clip {
    /// Path relative to its tree ([`media_root`] or `real_media::real_root`), `/`-separated.
    pub rel: &'static str,
    pub video: bool,
    pub audio: bool,
}

/// Length of every generated clip: long enough for several 1 s and 2 s segments, short enough to be quick.
pub const CLIP_SECONDS: u32 = 6;

pub const MP4: Clip = Clip {
    rel: "clip.mp4",
    video: true,
    audio: true,
};
pub const WEBM: Clip = Clip {
    rel: "clip.webm",
    video: true,
    audio: true,
};
pub const AUDIO_ONLY: Clip = Clip {
    rel: "song.mp3",
    video: false,
    audio: true,
};
pub const VIDEO_ONLY: Clip = Clip {
    rel: "silent.mkv",
    video: true,
    audio: false,
};
/// Spaces, non-ASCII, `&`, `<`, `>` and quotes: everything a listing must escape and a URL must encode.
pub const AWKWARD: Clip = Clip {
    rel: "Sub Dir & ü/it's <a> \"clip\".mp4",
    video: true,
    audio: true,
};
pub const AWKWARD_DIR: &str = "Sub Dir & ü";
/// A folder whose name sorts after every file, to show that folders are listed first.
pub const LAST_DIR: &str = "zz last";
pub const HIDDEN: &str = ".hidden.mp4";
/// Text with a media extension: the server has to find out from the content.
pub const NOT_MEDIA: &str = "notmedia.mp4";
/// Natural sort puts `ep2` before `ep10`; byte order would not.
pub const EP2: &str = "ep2.mp4";
pub const EP10: &str = "ep10.mp4";

/// How each generated file is made: its path and the ffmpeg arguments between `-y` and the output.
fn recipes() -> Vec<(&'static str, Vec<String>)> {
    let s = CLIP_SECONDS;
    let video = format!("testsrc2=size=320x240:rate=25:duration={s}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={s}");
    let x264 = "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 25";
    vec![
        (
            MP4.rel,
            lavfi_args(
                &[&video, &audio],
                &format!("{x264} -c:a aac -b:a 96k -shortest"),
            ),
        ),
        (
            WEBM.rel,
            lavfi_args(
                &[&video, &audio],
                "-c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -b:v 400k \
                 -pix_fmt yuv420p -c:a libopus -b:a 64k -shortest",
            ),
        ),
        (
            AUDIO_ONLY.rel,
            lavfi_args(&[&audio], "-c:a libmp3lame -b:a 128k"),
        ),
        (VIDEO_ONLY.rel, lavfi_args(&[&video], x264)),
    ]
}

/// ffmpeg arguments that read each of `inputs` from a lavfi source, then `rest` split on spaces.
pub fn lavfi_args(inputs: &[&str], rest: &str) -> Vec<String> {
    let mut args = Vec::new();
    for input in inputs {
        args.extend(["-f", "lavfi", "-i", input].map(String::from));
    }
    args.extend(rest.split_whitespace().map(String::from));
    args
}

/// Files that are copies of [`MP4`]: content does not matter for them, only names and places.
const COPIES_OF_MP4: [&str; 5] = [AWKWARD.rel, HIDDEN, EP2, EP10, "zz last/inner.mp4"];

const NOT_MEDIA_TEXT: &str = "This is a text file, not a video.\n";

/// The media tree, generated on first use (see [`cached_tree`]).
pub fn media_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let recipes = recipes();
        cached_tree("media", &(&recipes, COPIES_OF_MP4, NOT_MEDIA_TEXT), |dir| {
            run_recipes(dir, &recipes);
            for rel in COPIES_OF_MP4 {
                let out = dir.join(rel);
                fs::create_dir_all(out.parent().expect("has a parent")).expect("create folder");
                fs::copy(dir.join(MP4.rel), &out)
                    .unwrap_or_else(|e| panic!("copy to {out:?}: {e}"));
            }
            fs::write(dir.join(NOT_MEDIA), NOT_MEDIA_TEXT).expect("write text file");
        })
    })
}

/// A generated folder, cached across runs in a folder named after `prefix` and a hash of `key`
/// (the recipes), so that changing a recipe regenerates; built by `make` in a scratch folder and
/// renamed into place, so that concurrent test processes never see half a tree.
pub fn cached_tree(prefix: &str, key: &impl Hash, make: impl FnOnce(&Path)) -> PathBuf {
    super::watchdog();
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = parent.join(format!("{prefix}-{:016x}", hasher.finish()));
    if root.is_dir() {
        return root;
    }
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{prefix}-tmp-"))
        .tempdir_in(parent)
        .expect("create scratch folder for media");
    make(scratch.path());
    if fs::rename(scratch.path(), &root).is_ok() {
        // Renamed away: nothing left for the TempDir to clean up.
        let _ = scratch.keep();
    } else {
        assert!(root.is_dir(), "cannot move generated media to {root:?}");
    }
    root
}

/// Makes each recipe's file with ffmpeg.
pub fn run_recipes(dir: &Path, recipes: &[(&str, Vec<String>)]) {
    for (rel, args) in recipes {
        let out = dir.join(rel);
        let output = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
            .args(args)
            .arg(&out)
            .output()
            .unwrap_or_else(|e| panic!("cannot run ffmpeg (is it installed?): {e}"));
        assert!(
            output.status.success(),
            "ffmpeg failed to make {rel}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Length of the long clip, for seeking and memory tests: over ten minutes.
pub const LONG_SECONDS: u32 = 630;
/// Name of the long clip inside [`long_root`].
pub const LONG: &str = "long.mp4";

/// Length of [`DIRECT_LONG`].
pub const DIRECT_LONG_SECONDS: u32 = 95;
/// Name of a clip inside [`long_root`] that plays direct: H.264/AAC with a keyframe every 2 s,
/// bigger than the tests' `--max-height 240` so that passing it through shows.
pub const DIRECT_LONG: &str = "direct.mp4";

/// A folder holding one [`LONG_SECONDS`] clip (small picture, so it is quick to make and to
/// transcode, with keyframes 10 s apart, so it is transcoded) and a [`DIRECT_LONG_SECONDS`]
/// [`DIRECT_LONG`] clip, generated on first use and cached like [`media_root`].
pub fn long_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let recipe = vec![
            (
                LONG,
                pattern_with_tone(
                    LONG_SECONDS,
                    "size=320x240:rate=15",
                    "frequency=500:sample_rate=48000",
                    "-c:v libx264 -preset ultrafast -g 150 -c:a aac -b:a 64k -shortest",
                ),
            ),
            (
                DIRECT_LONG,
                pattern_with_tone(
                    DIRECT_LONG_SECONDS,
                    "size=640x360:rate=25",
                    "frequency=700:sample_rate=48000",
                    "-c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -c:a aac -b:a 64k \
                     -shortest",
                ),
            ),
        ];
        cached_tree("long", &recipe, |dir| run_recipes(dir, &recipe))
    })
}

/// Length of the two-hour clip: a feature film, for seeks deep into a long file.
pub const TWO_HOURS_SECONDS: u32 = 7200;
/// Name of the two-hour clip inside [`two_hours_root`].
pub const TWO_HOURS: &str = "two-hours.mp4";

/// A folder holding one [`TWO_HOURS_SECONDS`] clip, cached like [`media_root`]. Tiny on purpose
/// (160x90 at 5 fps, a keyframe every 20 s, 8 kbit/s mono) so that ffmpeg makes it in about
/// twenty seconds and hlss transcodes it many times faster than real time.
pub fn two_hours_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let recipe = vec![(
            TWO_HOURS,
            pattern_with_tone(
                TWO_HOURS_SECONDS,
                "size=160x90:rate=5",
                "frequency=500:sample_rate=8000",
                "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 100 -c:a aac -ac 1 -b:a 8k \
                 -shortest",
            ),
        )];
        cached_tree("two-hours", &recipe, |dir| run_recipes(dir, &recipe))
    })
}

/// ffmpeg arguments for `seconds` of test pattern (`testsrc2` with the options `picture`) and a
/// tone (`sine` with the options `tone`), encoded with `codecs`.
fn pattern_with_tone(seconds: u32, picture: &str, tone: &str, codecs: &str) -> Vec<String> {
    let mut args = Vec::new();
    for input in [
        format!("testsrc2={picture}:duration={seconds}"),
        format!("sine={tone}:duration={seconds}"),
    ] {
        args.extend(["-f".to_owned(), "lavfi".to_owned(), "-i".to_owned(), input]);
    }
    args.extend(codecs.split_whitespace().map(String::from));
    args
}

/// A folder of hard links (or copies) of the long clip under `names`: different files to the
/// server, long enough that no transcode finishes on its own during a test.
pub fn long_copies(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("copies-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("scratch folder");
    let source = long_root().join(LONG);
    for name in names {
        let copy = dir.path().join(name);
        std::fs::hard_link(&source, &copy)
            .or_else(|_| std::fs::copy(&source, &copy).map(|_| ()))
            .unwrap_or_else(|e| panic!("link the long clip as {copy:?}: {e}"));
    }
    dir
}
