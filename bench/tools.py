# The encoder settings shared by every tool, and the ffmpeg and GStreamer hlssink2 command lines that match hlss's.
"""hlss's transcode settings and the baselines' command lines with the same settings.

hlss encodes with x264enc (`speed-preset`, `tune=zerolatency`, `bitrate` in ABR with x264enc's
default 600 ms VBV buffer, no scene-cut keyframes, a keyframe forced every segment) and AAC 128
kb/s stereo 48 kHz, scaled to at most `--max-height`. The baselines below use the same libx264
and the same libav AAC encoder with the same figures, and write HLS to disk.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from common import env_float, env_int, spawn, stop

PRESET = os.environ.get("BENCH_PRESET", "veryfast")
SEGMENT = env_float("BENCH_SEGMENT", 2.0)
VIDEO_KBPS = env_int("BENCH_VIDEO_KBPS", 3000)
AUDIO_KBPS = 128
FPS = 30  # every source is 30 fps: keyframe interval in frames for hlssink2


def hlss_args(max_height: int) -> list[str]:
    return [
        "--preset", PRESET, "--segment-duration", f"{SEGMENT:g}",
        "--video-bitrate", str(VIDEO_KBPS), "--max-height", str(max_height),
    ]


def out_height(src_height: int, max_height: int) -> int:
    return min(src_height, max_height)


def ffmpeg_hls(src: Path, out: Path, height: int, src_height: int, seek: float = 0.0,
               zerolatency: bool = True) -> list[str]:
    """`ffmpeg -c:v libx264 -preset P -f hls -hls_time T` with hlss's other settings spelled out."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if seek:
        cmd += ["-ss", f"{seek:.3f}"]
    cmd += ["-i", str(src), "-map", "0:v:0", "-map", "0:a:0"]
    if height != src_height:
        cmd += ["-vf", f"scale=-2:{height}"]
    cmd += ["-c:v", "libx264", "-preset", PRESET]
    if zerolatency:
        cmd += ["-tune", "zerolatency", "-b:v", f"{VIDEO_KBPS}k", "-maxrate", f"{VIDEO_KBPS}k",
                "-bufsize", f"{VIDEO_KBPS * 6 // 10}k"]
    cmd += [
        "-pix_fmt", "yuv420p", "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT:g})",
        "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2", "-ar", "48000",
        "-f", "hls", "-hls_time", f"{SEGMENT:g}", "-hls_list_size", "0",
        "-hls_segment_filename", str(out / "seg%05d.ts"), str(out / "index.m3u8"),
    ]
    return cmd


def ffmpeg_copy_hls(src: Path, out: Path, seek: float = 0.0) -> list[str]:
    """`ffmpeg -c copy -f hls`: the source's own H.264 and AAC cut at its keyframes, written to disk
    (the baseline for hlss's direct streams)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if seek:
        cmd += ["-ss", f"{seek:.3f}"]
    return cmd + [
        "-i", str(src), "-map", "0:v:0", "-map", "0:a:0", "-c", "copy",
        "-f", "hls", "-hls_time", f"{SEGMENT:g}", "-hls_list_size", "0",
        "-hls_segment_filename", str(out / "seg%05d.ts"), str(out / "index.m3u8"),
    ]


def hlssink2(src: Path, out: Path, height: int, src_height: int, width: int) -> list[str]:
    """gst-launch-1.0: uridecodebin → x264enc/avenc_aac with hlss's settings → hlssink2."""
    scale = f",width={width},height={height}" if height != src_height else ""
    return [
        "gst-launch-1.0", "-q", "-e",
        "uridecodebin", f"uri={src.resolve().as_uri()}", "name=d",
        "d.", "!", "video/x-raw", "!", "queue", "!", "videoconvert", "!", "videoscale", "!",
        f"video/x-raw,format=I420,pixel-aspect-ratio=1/1{scale}", "!",
        "x264enc", f"speed-preset={PRESET}", "tune=zerolatency", f"bitrate={VIDEO_KBPS}",
        f"key-int-max={int(SEGMENT * FPS)}", "option-string=scenecut=0", "!",
        "h264parse", "config-interval=-1", "!", "hls.video",
        "d.", "!", "audio/x-raw", "!", "queue", "!", "audioconvert", "!", "audioresample", "!",
        "audio/x-raw,rate=48000,channels=2", "!",
        "avenc_aac", f"bitrate={AUDIO_KBPS * 1000}", "!", "aacparse", "!", "hls.audio",
        "hlssink2", "name=hls", f"target-duration={SEGMENT:g}", "playlist-length=0", "max-files=0",
        f"location={out / 'seg%05d.ts'}", f"playlist-location={out / 'index.m3u8'}",
    ]


def count_listed(playlist: Path) -> int:
    try:
        return playlist.read_text(errors="replace").count("#EXTINF")
    except FileNotFoundError:
        return 0


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def time_listing(cmd: list[str], out: Path, counts=(1, 3), timeout: float = 60.0) -> dict[int, float]:
    """Runs a disk-writing HLS tool and returns, for each count, the seconds from its start until
    its playlist listed that many segments (polled every 5 ms); the tool is killed after the last."""
    playlist = out / "index.m3u8"
    seen: dict[int, float] = {}
    t0 = time.monotonic()
    proc = spawn(cmd, stdout=open(os.devnull, "wb"), stderr=open(out.parent / (out.name + ".log"), "wb"))
    try:
        while len(seen) < len(counts) and time.monotonic() - t0 < timeout:
            n = count_listed(playlist)
            now = time.monotonic() - t0
            for c in counts:
                if n >= c and c not in seen:
                    seen[c] = now
            if proc.poll() is not None and len(seen) < len(counts):
                n = count_listed(playlist)
                for c in counts:
                    if n >= c and c not in seen:
                        seen[c] = now
                break
            time.sleep(0.005)
    finally:
        stop(proc, sig=9)
    return seen


def time_full(cmd: list[str], out: Path, timeout: float = 600.0) -> dict:
    """Runs a disk-writing HLS tool until its playlist is complete (`#EXT-X-ENDLIST` written) or it
    exits, whichever comes first: gst-launch-1.0 with hlssink2 sometimes never exits after writing
    ENDLIST (seen at 1080p). Returns the wall time, the peak RSS (KiB, from wait4) and how it ended."""
    playlist = out / "index.m3u8"
    t0 = time.monotonic()
    proc = spawn(cmd, stdout=open(os.devnull, "wb"), stderr=open(out.parent / (out.name + ".log"), "wb"))
    deadline = t0 + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        now = time.monotonic()
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            stop(proc)
            return {"wall": now - t0, "maxrss_kib": usage.ru_maxrss, "status": proc.returncode,
                    "ended": "exited"}
        try:
            done = "#EXT-X-ENDLIST" in playlist.read_text(errors="replace")
        except FileNotFoundError:
            done = False
        if done or now > deadline:
            wall = now - t0
            os.killpg(proc.pid, 9)
            _, _, usage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            stop(proc)
            if done:
                return {"wall": wall, "maxrss_kib": usage.ru_maxrss, "status": 0, "ended": "ENDLIST"}
            return {"wall": float("nan"), "maxrss_kib": usage.ru_maxrss, "status": -9, "ended": "timeout"}
        time.sleep(0.005)
