# Makes the benchmark sources with ffmpeg (lavfi test patterns): 720p/1080p H.264+AAC, VP9+Opus, a 10-minute file.
"""The media every section uses, made once and kept under target/bench/media (delete it to remake).

Sources are `testsrc2` (moving pattern, counter, colour bars) with a 440 Hz tone, encoded the way
typical files are: x264 `fast`, CRF 20, x264's default GOP (250 frames, a keyframe every 8.3 s),
so a seek has to decode from an earlier keyframe as it would in a real film.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import WORK, env_int, log

MEDIA = WORK / "media"
SECONDS = env_int("BENCH_SOURCE_SECONDS", 30)
# The long file is the 720p clip repeated (stream copy), so it costs nothing to make.
LONG_REPEATS = env_int("BENCH_LONG_REPEATS", 20)
# Direct-stream sources (section `direct`): 1080p24 H.264/AAC with a keyframe every 2 s (-g 48).
DIRECT_SECONDS = env_int("BENCH_DIRECT_SECONDS", 60)
DIRECT_KBPS = env_int("BENCH_DIRECT_KBPS", 6000)
DIRECT_LONG_MINUTES = env_int("BENCH_DIRECT_LONG_MINUTES", 120)


@dataclass(frozen=True)
class Source:
    key: str
    label: str
    path: Path
    width: int
    height: int
    seconds: float


def _ffmpeg(args: list[str]) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=900)


def _make(path: Path, width: int, height: int, video: list[str], audio: list[str]) -> None:
    tmp = path.with_name("tmp-" + path.name)
    _ffmpeg(
        [
            "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(SECONDS), "-pix_fmt", "yuv420p", *video, *audio, "-ac", "2", str(tmp),
        ]
    )
    tmp.rename(path)


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return float(json.loads(out)["format"]["duration"])


def make_all() -> dict[str, Source]:
    """Makes (or reuses) every source; returns them by key."""
    MEDIA.mkdir(parents=True, exist_ok=True)
    h264 = ["-c:v", "libx264", "-preset", "fast", "-crf", "20"]
    aac = ["-c:a", "aac", "-b:a", "128k"]
    specs = [
        ("h264_720p", "720p30 H.264/AAC", f"h264_720p_{SECONDS}s.mp4", 1280, 720, h264, aac),
        ("h264_1080p", "1080p30 H.264/AAC", f"h264_1080p_{SECONDS}s.mp4", 1920, 1080, h264, aac),
        (
            "vp9_720p", "720p30 VP9/Opus", f"vp9_720p_{SECONDS}s.webm", 1280, 720,
            ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1",
             "-b:v", "3M"],
            ["-c:a", "libopus", "-b:a", "128k"],
        ),
    ]
    out = {}
    for key, label, name, w, h, video, audio in specs:
        path = MEDIA / name
        if not path.exists():
            log(f"media: making {name}")
            _make(path, w, h, video, audio)
        out[key] = Source(key, label, path, w, h, _duration(path))
    long_path = MEDIA / f"long_720p_{SECONDS * LONG_REPEATS}s.mp4"
    if not long_path.exists():
        log(f"media: making {long_path.name}")
        listing = MEDIA / "long.txt"
        listing.write_text("".join(f"file '{out['h264_720p'].path.name}'\n" for _ in range(LONG_REPEATS)))
        tmp = long_path.with_name("tmp-" + long_path.name)
        _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(tmp)])
        tmp.rename(long_path)
    out["long_720p"] = Source(
        "long_720p", f"{SECONDS * LONG_REPEATS // 60}-minute 720p30 H.264/AAC", long_path, 1280, 720,
        _duration(long_path),
    )
    return out


def _direct_clip(path: Path, seconds: int, rate: list[str]) -> None:
    """A 1080p24 H.264/AAC MP4 with a keyframe every 48 frames (2 s) and none elsewhere: a file
    hlss can pass through. x264 `ultrafast`, so making it is cheap."""
    tmp = path.with_name("tmp-" + path.name)
    _ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=24",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds), "-pix_fmt", "yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", *rate, "-g", "48", "-keyint_min", "48", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "128k", "-ac", "2", str(tmp),
    ])
    tmp.rename(path)


def make_direct_set(count: int) -> list[Source]:
    """`count` distinct 1080p24 files in their own folder: one encode, then stream copies that
    differ in name and bytes (a title tag each), so every one is its own stream and file version."""
    folder = MEDIA / f"direct_{DIRECT_SECONDS}s_{DIRECT_KBPS}k"
    folder.mkdir(parents=True, exist_ok=True)
    base = MEDIA / f"direct_base_{DIRECT_SECONDS}s_{DIRECT_KBPS}k.mp4"
    if not base.exists():
        log(f"media: making {base.name}")
        _direct_clip(base, DIRECT_SECONDS,
                     ["-b:v", f"{DIRECT_KBPS}k", "-maxrate", f"{DIRECT_KBPS}k", "-bufsize", f"{DIRECT_KBPS * 2}k"])
    seconds = _duration(base)
    out = []
    for i in range(count):
        path = folder / f"film{i + 1:02d}.mp4"
        if not path.exists():
            tmp = path.with_name("tmp-" + path.name)
            _ffmpeg(["-i", str(base), "-map", "0", "-c", "copy", "-metadata", f"title=hlss bench film {i + 1}",
                     str(tmp)])
            tmp.rename(path)
        out.append(Source(f"direct_{i + 1}", "1080p24 H.264/AAC, keyframe every 2 s", path, 1920, 1080, seconds))
    return out


def make_direct_long() -> dict[str, Source]:
    """A long 1080p24 file, MP4 and Matroska (same packets): a low-bitrate one-minute clip (500 kb/s)
    repeated by stream copy. What a cold seek costs is the container index, not the bitrate."""
    clip = MEDIA / "direct_long_clip_60s.mp4"
    if not clip.exists():
        log(f"media: making {clip.name}")
        _direct_clip(clip, 60, ["-b:v", "500k"])
    minutes = DIRECT_LONG_MINUTES
    out = {}
    mp4 = MEDIA / f"direct_long_{minutes}min.mp4"
    if not mp4.exists():
        log(f"media: making {mp4.name}")
        listing = MEDIA / "direct_long.txt"
        listing.write_text("".join(f"file '{clip.name}'\n" for _ in range(minutes)))
        tmp = mp4.with_name("tmp-" + mp4.name)
        _ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(tmp)])
        tmp.rename(mp4)
    mkv = mp4.with_suffix(".mkv")
    if not mkv.exists():
        log(f"media: making {mkv.name}")
        tmp = mkv.with_name("tmp-" + mkv.name)
        _ffmpeg(["-i", str(mp4), "-map", "0", "-c", "copy", str(tmp)])
        tmp.rename(mkv)
    for key, path in (("mp4", mp4), ("mkv", mkv)):
        out[key] = Source(f"direct_long_{key}", f"{minutes}-minute 1080p24 H.264/AAC {key.upper()}", path,
                          1920, 1080, _duration(path))
    return out
