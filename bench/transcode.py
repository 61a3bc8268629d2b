# Real-time factor of a full transcode: hlss making every segment in memory vs ffmpeg and hlssink2 writing HLS to disk.
"""Section 2. hlss runs with `--read-ahead 1000` (its maximum, so its transcode never pauses) and a
client pulls the playlist and then every segment in order, each as soon as the previous one
arrived; the clock runs from the playlist request to the last segment's last byte. Baselines run
to completion writing HLS to disk. RTF = source duration / wall time. hlss's own
`hlss_stream_realtime_factor` gauge is recorded beside it. Peak RSS of each baseline comes from
wait4(2); hlss's is the server's VmHWM (the whole process, HTTP server included)."""

from __future__ import annotations

import time

from common import WORK, Hlss, env_int, log, playlist_durations, playlist_uris, ratio, summary
from media import Source
from startup import max_height_for
from tools import ffmpeg_hls, fresh_dir, hlss_args, hlssink2, out_height, time_full

RUNS = env_int("BENCH_RTF_RUNS", 3)


def hlss_full(src: Source) -> dict:
    with Hlss(src.path, *hlss_args(max_height_for(src)), "--read-ahead", "1000",
              log_name=f"rtf-{src.key}") as h:
        name = src.path.name
        t0 = time.monotonic()
        text = h.media_playlist(name)
        total = 0
        for uri in playlist_uris(text):
            total += len(h.get(f"hls/{name}/{uri}", timeout=120))
        wall = time.monotonic() - t0
        m = h.metrics()
        return {
            "wall": wall,
            "rtf": src.seconds / wall,
            "media": sum(playlist_durations(text)),
            "bytes": total,
            "metric_rtf": m.get(f'hlss_stream_realtime_factor{{stream="{name}"}}'),
            "transcodes": m.get(f'hlss_stream_transcodes_started_total{{stream="{name}"}}'),
            "hwm_kib": h.status().get("VmHWM", 0),
        }


def baseline_full(tool: str, src: Source) -> dict:
    mh = max_height_for(src)
    h = out_height(src.height, mh)
    out = fresh_dir(WORK / "tmp" / f"rtf-{tool}")
    if tool == "ffmpeg":
        cmd = ffmpeg_hls(src.path, out, h, src.height)
    else:
        cmd = hlssink2(src.path, out, h, src.height, width=src.width * h // src.height)
    r = time_full(cmd, out)
    r["listed"] = (out / "index.m3u8").read_text().count("#EXTINF") if (out / "index.m3u8").exists() else 0
    r["rtf"] = src.seconds / r["wall"] if r["status"] == 0 else float("nan")
    r["cmd"] = cmd
    return r


def realtime_factor(sources: list[Source], runs: int = RUNS) -> dict:
    results = {}
    for src in sources:
        raw = {"hlss": [], "ffmpeg": [], "hlssink2": []}
        cmds = {}
        for run in range(runs):
            raw["hlss"].append(hlss_full(src))
            for tool in ("ffmpeg", "hlssink2"):
                r = baseline_full(tool, src)
                cmds[tool] = r.pop("cmd")
                raw[tool].append(r)
            log(f"transcode: {src.key} run {run + 1}/{runs}: " + ", ".join(
                f"{t} {raw[t][-1]['rtf']:.2f}x" for t in raw))
        res = {t: summary([r["rtf"] for r in raw[t]]) for t in raw}
        res["hlss_metric"] = summary([r["metric_rtf"] for r in raw["hlss"]])
        res["label"] = src.label
        res["seconds"] = src.seconds
        res["raw"] = raw
        res["cmds"] = cmds
        res["ratio_ffmpeg"] = ratio(res["hlss"]["median"], res["ffmpeg"]["median"])
        res["ratio_hlssink2"] = ratio(res["hlss"]["median"], res["hlssink2"]["median"])
        results[src.key] = res
    return results
