//! How a stream is delivered: the source's own H.264/AAC passed through (direct), or transcoded, and why.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::Plan;
use crate::library::index::{self, FileVersion, IndexCache, IndexError, VersionCache};
use crate::transcode::{AudioCodec, Codecs, Probe, VideoCodec, scan};

/// How long a stream's opening waits for a keyframe scan of a container without an index
/// (MPEG-TS, FLV), on top of the probe. A scan reads 0.75 to 1.2 GB/s here from the page cache
/// (8 Mb/s 1080p MPEG-TS: 30 minutes in 1.6 s, 2 hours in 10 to 13 s), so this covers about
/// 50 minutes of such a file; a longer one is transcoded rather than kept waiting for, while its
/// scan goes on in the background, so that the file plays direct from its next opening on.
pub const SCAN_BUDGET: Duration = Duration::from_secs(3);
/// How long a scan may go on in the background: a 2-hour recording read from a slow disk.
const SCAN_LIMIT: Duration = Duration::from_secs(120);
/// Scans going on at once, at most: each reads a whole file as fast as the disk allows.
const MAX_SCANS: usize = 2;

/// What is known of the served files' keyframes, per file version, bounded, kept across a
/// stream's closing and reopening: container indexes, and scans of containers without one.
pub struct Keyframes {
    indexes: IndexCache,
    scans: Arc<VersionCache<scan::Scan, scan::ScanError>>,
    /// File versions being scanned now.
    scanning: Arc<Mutex<HashSet<FileVersion>>>,
    /// How long an opening waits for a scan ([`SCAN_BUDGET`]; shorter in tests).
    wait: Duration,
}

impl Default for Keyframes {
    fn default() -> Self {
        Keyframes::waiting(SCAN_BUDGET)
    }
}

impl Keyframes {
    fn waiting(wait: Duration) -> Keyframes {
        Keyframes {
            indexes: IndexCache::default(),
            scans: Arc::new(VersionCache::new(index::DEFAULT_CACHE_KEYFRAMES)),
            scanning: Arc::default(),
            wait,
        }
    }

    /// The scan of the file at `path` as it is now, if one was made and kept (never starts one).
    fn scanned(&self, path: &Path) -> Option<Arc<scan::Scan>> {
        let version = FileVersion::of(path).ok()?;
        self.scans.lookup(&version)?.ok()
    }

    /// The scan of the file at `path` as it is now: kept from before, or made now on a thread
    /// of its own, waited for at most `wait`. A scan that takes longer goes on alone and keeps
    /// its result for the next opening; meanwhile this one gets [`scan::ScanError::Unfinished`].
    fn scan(&self, path: &Path) -> index::Outcome<scan::Scan, scan::ScanError> {
        let version = FileVersion::of(path).map_err(|e| Arc::new(e.into()))?;
        if let Some(kept) = self.scans.lookup(&version) {
            return kept;
        }
        let busy = || Arc::new(scan::ScanError::Unfinished(self.wait));
        {
            let mut scanning = self.scanning.lock();
            if scanning.contains(&version) || scanning.len() >= MAX_SCANS {
                return Err(busy());
            }
            scanning.insert(version.clone());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let (scans, scanning, path) = (self.scans.clone(), self.scanning.clone(), path.to_owned());
        let scanned = version.clone();
        let spawned = std::thread::Builder::new()
            .name("hlss-scan".into())
            .spawn(move || {
                let outcome = scan::keyframes(&path, SCAN_LIMIT)
                    .map(Arc::new)
                    .map_err(Arc::new);
                scans.insert(scanned.clone(), outcome.clone());
                scanning.lock().remove(&scanned);
                let _ = tx.send(outcome);
            });
        if let Err(err) = spawned {
            self.scanning.lock().remove(&version);
            return Err(Arc::new(scan::ScanError::Failed(format!(
                "cannot start a thread: {err}"
            ))));
        }
        rx.recv_timeout(self.wait).unwrap_or_else(|_| Err(busy()))
    }
}

/// What a direct stream does with the source's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectAudio {
    /// AAC-LC: passed through.
    Pass,
    /// Anything else: decoded and encoded to AAC beside the passed-through video.
    Encode,
    /// The source has no audio.
    None,
}

/// How a stream's runs make its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The source's H.264 remuxed untouched, cut at its own keyframes; audio as it says.
    Direct { video: bool, audio: DirectAudio },
    /// Decoded and encoded (H.264 + AAC), with the reason it could not pass.
    Transcode(Reason),
}

/// Why a source is transcoded rather than passed through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("direct streaming is off (--direct off)")]
    Off,
    #[error("a generated source")]
    Generated,
    #[error("EVENT playlists are transcoded")]
    Event,
    #[error("the video is {0}, not H.264")]
    VideoCodec(String),
    #[error("the video is {0}-bit, not 8-bit")]
    BitDepth(u32),
    #[error("the video's chroma is {0}, not 4:2:0")]
    Chroma(String),
    #[error("the video is interlaced")]
    Interlaced,
    #[error("the picture must be turned or flipped (orientation tag)")]
    Oriented,
    #[error("the audio is {0} and there is no video to pass")]
    AudioOnly(String),
    #[error("no keyframe index: {0}")]
    NoIndex(String),
    #[error("keyframes up to {:.1} s apart, over --max-segment {:.1} s", .0.as_secs_f64(), .1.as_secs_f64())]
    LongGop(Duration, Duration),
}

impl Delivery {
    /// A short name for status pages and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Delivery::Direct { .. } => "direct",
            Delivery::Transcode(_) => "transcode",
        }
    }
}

/// One line for logs and the status page: `direct`, `direct (audio encoded)`, or
/// `transcode: <reason>`.
pub fn describe(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Direct {
            audio: DirectAudio::Encode,
            ..
        } => "direct (audio encoded to AAC)".into(),
        Delivery::Direct { .. } => "direct".into(),
        Delivery::Transcode(reason) => format!("transcode: {reason}"),
    }
}

/// What the codecs allow, before the keyframes are looked at: `Ok` with the audio's handling
/// when the video (if any) is H.264 8-bit 4:2:0 progressive and needs no turning, or the
/// source is AAC audio alone.
pub fn by_codecs(codecs: &Codecs) -> Result<Delivery, Reason> {
    let audio = match &codecs.audio {
        None => DirectAudio::None,
        Some(AudioCodec { aac_lc: true, .. }) => DirectAudio::Pass,
        Some(AudioCodec { .. }) => DirectAudio::Encode,
    };
    let Some(video) = &codecs.video else {
        return match (&codecs.audio, audio) {
            (_, DirectAudio::Pass) => Ok(Delivery::Direct {
                video: false,
                audio,
            }),
            (Some(other), _) => Err(Reason::AudioOnly(other.media_type.clone())),
            (None, _) => Err(Reason::AudioOnly("missing".into())),
        };
    };
    check_video(video)?;
    Ok(Delivery::Direct { video: true, audio })
}

fn check_video(video: &VideoCodec) -> Result<(), Reason> {
    if video.media_type != "video/x-h264" {
        return Err(Reason::VideoCodec(video.media_type.clone()));
    }
    if let Some(depth) = video.bit_depth.filter(|d| *d != 8) {
        return Err(Reason::BitDepth(depth));
    }
    if let Some(chroma) = video.chroma.as_ref().filter(|c| *c != "4:2:0") {
        return Err(Reason::Chroma(chroma.clone()));
    }
    if video.interlaced {
        return Err(Reason::Interlaced);
    }
    if video.oriented {
        return Err(Reason::Oriented);
    }
    Ok(())
}

/// How a probed VOD file at `path` is delivered, and its plan: direct on a plan cut at its own
/// keyframes (from the container's index or a demux-only scan, no decoding; both kept in
/// `known` per file version) when the codecs allow, an index can be had and no segment would exceed
/// `max_segment` (`None`: `--direct off`); else transcoded on the even grid of `target`.
/// Blocking (reads the file's index or scans it): call off the async runtime.
pub fn decide(
    path: Option<&Path>,
    probe: &Probe,
    target: Duration,
    max_segment: Option<Duration>,
    known: &Keyframes,
) -> (Plan, Delivery) {
    let even = Plan::new(target, probe.origin, probe.duration);
    match direct_plan(path, probe, target, max_segment, known) {
        Ok((plan, delivery)) => (plan.unwrap_or(even), delivery),
        Err(reason) => (even, Delivery::Transcode(reason)),
    }
}

/// A direct delivery and its keyframe plan (`None`: audio alone, on the even grid).
fn direct_plan(
    path: Option<&Path>,
    probe: &Probe,
    target: Duration,
    max_segment: Option<Duration>,
    known: &Keyframes,
) -> Result<(Option<Plan>, Delivery), Reason> {
    let max_segment = max_segment.ok_or(Reason::Off)?;
    let path = path.ok_or(Reason::Generated)?;
    let delivery = by_codecs(&probe.codecs)?;
    if let Delivery::Direct { video: false, .. } = delivery {
        return Ok((None, delivery));
    }
    let (keyframes, container_end) = keyframes(path, known)?;
    // Where the audio and video end, as the probe measured it: a container's own figure can
    // count a subtitle track that outlasts the picture (Matroska's Duration does).
    let end = probe
        .duration
        .map_or(container_end, |duration| probe.origin + duration);
    let plan = Plan::at_keyframes(&keyframes, end, target)
        .ok_or_else(|| Reason::NoIndex("no keyframe".into()))?;
    by_segments(plan.longest().unwrap_or_default(), max_segment)?;
    Ok((Some(plan), delivery))
}

/// The video's keyframes and end, in media time: from the container's index, or for a container
/// without one from a demux-only scan waited for at most [`SCAN_BUDGET`].
fn keyframes(path: &Path, known: &Keyframes) -> Result<(Vec<Duration>, Duration), Reason> {
    let no_index = |err: &dyn std::fmt::Display| Reason::NoIndex(err.to_string());
    let index = match known.indexes.get(path) {
        Ok(index) => index,
        Err(err) if matches!(*err, IndexError::Unsupported) => {
            let scan = known.scan(path).map_err(|e| no_index(&e))?;
            return Ok((scan.keyframes.clone(), scan.end));
        }
        Err(err) => return Err(no_index(&err)),
    };
    let video = index
        .video
        .as_ref()
        .ok_or_else(|| Reason::NoIndex("the container lists no video track".into()))?;
    let keyframes = video
        .keyframes
        .iter()
        .filter_map(|&ticks| media_time(ticks, video.timescale))
        .collect();
    let end = media_time(video.end, video.timescale)
        .ok_or_else(|| Reason::NoIndex("the video track ends before it starts".into()))?;
    Ok((keyframes, end))
}

/// `ticks` at `timescale` as media time, rounded down to the nanosecond as GStreamer's
/// demuxers convert it (so a seek to it lands on that sample); `None` before time zero.
fn media_time(ticks: i64, timescale: u32) -> Option<Duration> {
    let ticks = u128::try_from(ticks).ok()?;
    let nanos = ticks * 1_000_000_000 / u128::from(timescale.max(1));
    u64::try_from(nanos).ok().map(Duration::from_nanos)
}

/// The peak bit rate of a direct stream's segments, from where the source's keyframes lie in the
/// file (MP4 sample tables, Matroska Cues, the scan of MPEG-TS and FLV): the keyframes grouped
/// into segments as the plan
/// groups them, each segment's bytes the file's bytes from its keyframe to the next segment's
/// (every track of an interleaved file: an upper bound when the variant carries fewer). `None`
/// when the container does not say (Matroska without Cues, fragmented MP4): the caller estimates.
/// Blocking (reads the file's index).
pub fn direct_peak(path: &Path, plan: &Plan, target: Duration, known: &Keyframes) -> Option<u64> {
    let plan_end = plan.start_of(plan.count()?);
    // (time, byte position) of keyframes, where the data ends, and when (same clock).
    let (keyframes, end_pos, end) = match index::keyframe_offsets(path) {
        Ok(offsets) => {
            let keyframes: Vec<(Duration, u64)> = offsets
                .keyframes
                .iter()
                .map(|(ns, at)| (Duration::from_nanos(*ns), *at))
                .collect();
            // MP4 counts decode time, Matroska the plan's own media time.
            let end = match offsets.end_time_ns {
                0 => plan_end,
                ns => Duration::from_nanos(ns),
            };
            (keyframes, offsets.end, end)
        }
        // MPEG-TS and FLV: where the demuxer had read to when each keyframe came out (their
        // scan was made to decide on direct delivery).
        Err(IndexError::Unsupported) => {
            let scan = known.scanned(path)?;
            (scan.positions.clone(), scan.file_len, plan_end)
        }
        Err(_) => return None,
    };
    let times: Vec<Duration> = keyframes.iter().map(|k| k.0).collect();
    let shadow = Plan::at_keyframes(&times, end, target)?;
    let offset_at = |t: Duration| times.binary_search(&t).ok().map(|i| keyframes[i].1);
    let count = shadow.count()?;
    let mut peak = 0u64;
    for k in 0..count {
        let from = offset_at(shadow.start_of(k))?;
        let to = if k + 1 < count {
            offset_at(shadow.start_of(k + 1))?
        } else {
            end_pos
        };
        let seconds = shadow.duration_of(k)?.as_secs_f64();
        if seconds > 0.0 {
            let rate = to.saturating_sub(from) as f64 * 8.0 / seconds;
            peak = peak.max(rate.ceil() as u64);
        }
    }
    (peak > 0).then_some(peak)
}

/// The last check: a direct plan's longest segment (its longest GOP) must fit `max_segment`.
pub fn by_segments(longest: Duration, max_segment: Duration) -> Result<(), Reason> {
    if longest > max_segment {
        Err(Reason::LongGop(longest, max_segment))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h264() -> VideoCodec {
        VideoCodec {
            media_type: "video/x-h264".into(),
            bit_depth: Some(8),
            chroma: Some("4:2:0".into()),
            interlaced: false,
            oriented: false,
            width: 1920,
            height: 1080,
            par: (1, 1),
            quarter_turn: false,
            frame_rate: Some((30, 1)),
            avc: Some([100, 0, 40]),
        }
    }

    fn audio(media_type: &str, aac_lc: bool) -> AudioCodec {
        AudioCodec {
            media_type: media_type.into(),
            aac_lc,
        }
    }

    #[test]
    fn h264_with_aac_lc_passes_whole() {
        let codecs = Codecs {
            video: Some(h264()),
            audio: Some(audio("audio/mpeg", true)),
        };
        assert_eq!(
            by_codecs(&codecs),
            Ok(Delivery::Direct {
                video: true,
                audio: DirectAudio::Pass
            })
        );
    }

    #[test]
    fn other_audio_is_encoded_beside_passed_video() {
        let codecs = Codecs {
            video: Some(h264()),
            audio: Some(audio("audio/x-ac3", false)),
        };
        assert_eq!(
            by_codecs(&codecs),
            Ok(Delivery::Direct {
                video: true,
                audio: DirectAudio::Encode
            })
        );
    }

    #[test]
    fn each_video_rule_sends_the_file_to_the_transcoder() {
        type Change = fn(&mut VideoCodec);
        let cases: [(Change, Reason); 5] = [
            (
                |v| v.media_type = "video/x-h265".into(),
                Reason::VideoCodec("video/x-h265".into()),
            ),
            (|v| v.bit_depth = Some(10), Reason::BitDepth(10)),
            (
                |v| v.chroma = Some("4:2:2".into()),
                Reason::Chroma("4:2:2".into()),
            ),
            (|v| v.interlaced = true, Reason::Interlaced),
            (|v| v.oriented = true, Reason::Oriented),
        ];
        for (change, reason) in cases {
            let mut video = h264();
            change(&mut video);
            let codecs = Codecs {
                video: Some(video),
                audio: None,
            };
            assert_eq!(by_codecs(&codecs), Err(reason));
        }
    }

    #[test]
    fn aac_alone_passes_other_audio_alone_does_not() {
        let aac = Codecs {
            video: None,
            audio: Some(audio("audio/mpeg", true)),
        };
        assert_eq!(
            by_codecs(&aac),
            Ok(Delivery::Direct {
                video: false,
                audio: DirectAudio::Pass
            })
        );
        let mp3 = Codecs {
            video: None,
            audio: Some(audio("audio/mpeg", false)),
        };
        assert_eq!(by_codecs(&mp3), Err(Reason::AudioOnly("audio/mpeg".into())));
    }

    #[test]
    fn media_time_rounds_down_like_the_demuxers() {
        assert_eq!(
            media_time(1001, 24_000),
            Some(Duration::from_nanos(41_708_333))
        );
        assert_eq!(media_time(-1, 90_000), None);
        assert_eq!(media_time(0, 0), Some(Duration::ZERO));
    }

    #[test]
    fn a_gop_longer_than_the_longest_segment_transcodes() {
        let max = Duration::from_secs(6);
        assert!(by_segments(Duration::from_secs(6), max).is_ok());
        let long = by_segments(Duration::from_millis(8500), max).unwrap_err();
        assert_eq!(
            long.to_string(),
            "keyframes up to 8.5 s apart, over --max-segment 6.0 s"
        );
    }

    /// A 4 s H.264 clip in MPEG-TS with a keyframe every second, made with ffmpeg (the stream
    /// module stays free of GStreamer, tests included).
    fn make_ts(path: &Path) {
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc2=size=160x120:rate=25:duration=4")
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-f",
                "mpegts",
            ])
            .arg(path)
            .status()
            .expect("ffmpeg runs (make test installs it)");
        assert!(status.success(), "ffmpeg could not make {path:?}");
    }

    #[test]
    fn a_scan_is_kept_per_file_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.ts");
        make_ts(&path);
        let known = Keyframes::default();
        let first = known.scan(&path).unwrap();
        assert_eq!(first.keyframes.len(), 4, "{:?}", first.keyframes);
        assert!(std::sync::Arc::ptr_eq(&first, &known.scan(&path).unwrap()));
        // Another version of the file (here: longer) is scanned again.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0xff; 188]);
        std::fs::write(&path, bytes).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&first, &known.scan(&path).unwrap()));
    }

    #[test]
    fn a_scan_longer_than_the_wait_goes_on_and_serves_the_next_opening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.ts");
        make_ts(&path);
        let known = Keyframes::waiting(Duration::ZERO);
        let err = known.scan(&path).unwrap_err();
        assert!(matches!(*err, scan::ScanError::Unfinished(_)), "{err}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let scanned = loop {
            match known.scan(&path) {
                Ok(scanned) => break scanned,
                Err(err) => assert!(matches!(*err, scan::ScanError::Unfinished(_)), "{err}"),
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the scan never finished"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(scanned.keyframes.len(), 4, "{:?}", scanned.keyframes);
    }
}
