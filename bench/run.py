#!/usr/bin/env python3
# `make bench` entry point: runs every section, prints the table and writes BENCHMARKS.md at the repo top.
"""hlss benchmarks against ffmpeg, GStreamer hlssink2 and nginx, measured in one run.

    python3 bench/run.py              # everything (what `make bench` runs after building)
    python3 bench/run.py --report     # rewrite BENCHMARKS.md from target/bench/results.json

Settings (environment): BENCH_RUNS (cold starts per tool, default 5), BENCH_RTF_RUNS (full
transcodes per tool, 3), BENCH_SERVE_RUNS (wrk runs per server, 5), BENCH_SERVE_SECONDS (8),
BENCH_SECTIONS (comma list of startup,transcode,seek,serving,memory,segmenter,direct,tier; default all),
BENCH_PRESET (veryfast), BENCH_OUT (BENCHMARKS.md), BENCH_SOURCE_SECONDS (30).

Section `direct` (bench/direct.py): BENCH_DIRECT_LADDER (viewer counts, 2,4,8,16,32,50),
BENCH_DIRECT_PLAY (seconds of media each viewer plays, 30), BENCH_DIRECT_START_BUFFER (6),
BENCH_DIRECT_AHEAD (seconds a player buffers ahead, 30), BENCH_DIRECT_CPU_FILES (files served for
the CPU figure, 2), BENCH_DIRECT_SECONDS (length of each 1080p source, 60), BENCH_DIRECT_KBPS (its
video bitrate, 6000), BENCH_DIRECT_LONG_MINUTES (the long file for the cold seek, 120).

Section `tier` (bench/tier.py): BENCH_TIER_VIEWERS (8), BENCH_TIER_RUNS (3).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HLSS, ROOT, WORK, log, stop_all  # noqa: E402
import report  # noqa: E402

ALL = ["startup", "transcode", "seek", "serving", "memory", "segmenter", "direct", "tier"]


def _cmd(cmd: list[str], stderr: bool = False) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (p.stderr if stderr else p.stdout).strip()
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def facts() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    rev = _cmd(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": _cmd(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "hlss": _cmd([str(HLSS), "--version"]) + f" (git {rev}{' + local changes' if dirty else ''})",
        "rustc": _cmd(["rustc", "--version"]),
        "ffmpeg": " ".join(_cmd(["ffmpeg", "-version"]).split()[:3]),
        "gstreamer": (_cmd(["gst-launch-1.0", "--version"]).splitlines() or ["?", "?"])[1:2][0],
        "libx264": _cmd(["sh", "-c", "dpkg-query -W -f='${Package} ${Version}' 'libx264-*' 2>/dev/null"]),
        "nginx": _cmd(["nginx", "-v"], stderr=True).replace("nginx version: ", ""),
        "wrk": _cmd(["sh", "-c", "wrk -v 2>&1 | head -1"]),
        "python": platform.python_version(),
        "load_start": os.getloadavg(),
    }


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    results_path = WORK / "results.json"
    out_path = Path(os.environ.get("BENCH_OUT", ROOT / "BENCHMARKS.md"))
    if "--report" in sys.argv:
        results = json.loads(results_path.read_text())
        text = report.render(results)
        out_path.write_text(text)
        print(report.table(results))
        return 0
    if not HLSS.exists():
        log(f"{HLSS} is missing: run `cargo build --release` (make bench does)")
        return 1
    sections = [s.strip() for s in os.environ.get("BENCH_SECTIONS", ",".join(ALL)).split(",") if s.strip()]
    unknown = set(sections) - set(ALL)
    if unknown:
        log(f"unknown BENCH_SECTIONS: {sorted(unknown)}; known: {ALL}")
        return 2

    import direct
    import media
    import memory
    import segmenter
    import serving
    import startup
    import tier
    import transcode
    import tools

    started = time.monotonic()
    results: dict = {"facts": facts(), "sections": sections, "settings": {
        "runs": startup.RUNS, "rtf_runs": transcode.RUNS, "serve_runs": serving.RUNS,
        "serve_seconds": serving.SECONDS, "connections": serving.CONNECTIONS, "wrk_threads": serving.THREADS,
        "preset": tools.PRESET, "segment": tools.SEGMENT, "video_kbps": tools.VIDEO_KBPS,
        "audio_kbps": tools.AUDIO_KBPS, "source_seconds": media.SECONDS,
        "env": {k: v for k, v in os.environ.items() if k.startswith("BENCH_")},
    }}
    results["facts"]["nginx"] = results["facts"]["nginx"] or serving.nginx_version()
    try:
        src = media.make_all()
        results["media"] = {k: {"label": s.label, "file": s.path.name, "seconds": s.seconds,
                                "size": f"{s.width}x{s.height}"} for k, s in src.items()}
        trio = [src["h264_720p"], src["h264_1080p"], src["vp9_720p"]]
        if "startup" in sections:
            results["startup"] = startup.first_playlist(trio)
        if "transcode" in sections:
            results["transcode"] = transcode.realtime_factor(trio)
        if "seek" in sections:
            results["seek"] = startup.seek(src["long_720p"])
        if "serving" in sections:
            results["serving"] = serving.serving(src["h264_720p"])
        if "memory" in sections:
            results["memory"] = {str(k): v for k, v in memory.memory(src["h264_720p"]).items()}
        if "segmenter" in sections:
            results["segmenter"] = segmenter.criterion()
        if "direct" in sections:
            results["direct"] = direct.direct()
        if "tier" in sections:
            results["tier"] = tier.tier({
                "transcoded (720p30 H.264, 8 s GOP)": src["h264_720p"].path,
                "direct (1080p24 H.264, 2 s GOP)": media.make_direct_set(1)[0].path,
            }, tools.hlss_args(720))
    finally:
        stop_all()
        results["facts"]["load_end"] = os.getloadavg()
        results["facts"]["duration_s"] = time.monotonic() - started
        results_path.write_text(json.dumps(results, indent=1, default=str))
    text = report.render(results)
    out_path.write_text(text)
    print()
    print(report.table(results))
    print(f"\nwrote {out_path} (raw figures: {results_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
