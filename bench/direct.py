# Direct streaming (issue 13): viewers of distinct 1080p files, first segment, cold seek, CPU and RSS — direct vs transcoded.
"""Section `direct`. The same hlss command with `--direct auto` (compatible sources passed through,
cut at their own keyframes) and with `--direct off` (everything transcoded with hlss's default
settings: x264 `veryfast`, 3 Mb/s, at most 720p); `ffmpeg -c copy -f hls` is the baseline where a
disk-writing tool compares. Sources (bench/media.py): distinct 1080p24 H.264/AAC MP4s with a
keyframe every 2 s, and a long 1080p24 file as MP4 and as Matroska.

1. Viewers. For N on a ladder: a fresh server on the folder, N simulated players (threads), one
   per file, started together. A player fetches the playlist, then segments in order as fast as
   they come until it holds START_BUFFER s of media; then it plays at real-time pace and fetches
   the next segment whenever it holds less than AHEAD s beyond the playhead. A stall is the
   playhead reaching the end of the buffer before the next segment arrived; playback resumes as
   soon as it does. A 503 is retried after its Retry-After (at most 1 s), as players do. Each
   player plays PLAY s of media. The direct side keeps `--max-transcodes` at its default; the
   transcoded side gets `--max-transcodes N` (each viewer a transcode). Each ladder stops after
   the first N with at least N stalls (the transcoded one early). hlss's RSS is sampled every 0.5 s; its plateau is the
   median of the samples taken while every player was playing, and RSS per viewer is (plateau −
   RSS before the players) / N. CPU: hlss's utime + stime over the phase. At the direct ladder's
   top N, the same players play from nginx serving `ffmpeg -c copy -f hls` segments of the same
   files: the check that the players themselves keep up on this machine.
2. First segment, cold: a fresh server per measurement, playlist + segment 0 of one 1080p file
   (`startup.hlss_cold`), direct and transcoded, round-robin with `ffmpeg -c copy -f hls` timed
   until its playlist lists 1 (and 3) segments. One warm-up round is discarded.
3. Cold seek: a fresh server on the long file, the playlist, then the segment at 80 %; MP4 and
   Matroska; `ffmpeg -ss -c copy -f hls` until its first segment is listed as the reference.
4. CPU per hour of media: a fresh server, a client pulls every segment of CPU_FILES files in
   order, each as soon as the previous one arrived; hlss's utime + stime from /proc/PID/stat
   before and after. Baseline: `ffmpeg -c copy -f hls` of the same files (rusage from wait4).

Every hlss run records which delivery the server chose (`hlss_stream_delivery` in /metrics), so a
build without direct streaming shows up in the table as such instead of as slow figures.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time
import urllib.error

from common import (WORK, Hlss, env_float, env_int, http_get, log, playlist_durations, playlist_uris, proc_cpu,
                    ratio, spawn, stop, summary)
from media import DIRECT_KBPS, DIRECT_LONG_MINUTES, DIRECT_SECONDS, Source, make_direct_long, make_direct_set
from serving import start_nginx
from startup import RUNS, hlss_cold
from tools import ffmpeg_copy_hls, fresh_dir, hlss_args, time_listing

LADDER = [int(x) for x in os.environ.get("BENCH_DIRECT_LADDER", "2,4,8,16,32,50").split(",")]
PLAY = env_float("BENCH_DIRECT_PLAY", 30.0)
START_BUFFER = env_float("BENCH_DIRECT_START_BUFFER", 6.0)
AHEAD = env_float("BENCH_DIRECT_AHEAD", 30.0)
CPU_FILES = env_int("BENCH_DIRECT_CPU_FILES", 2)
SEEK_FRACTION = 0.8
START_LIMIT = 60.0  # seconds a player may wait for its start buffer before it gives up
MODES = {"direct": "auto", "transcode": "off"}


def settings() -> dict:
    return {"ladder": LADDER, "play_s": PLAY, "start_buffer_s": START_BUFFER, "ahead_s": AHEAD,
            "cpu_files": CPU_FILES, "runs": RUNS, "seek_fraction": SEEK_FRACTION,
            "source_seconds": DIRECT_SECONDS, "source_kbps": DIRECT_KBPS, "long_minutes": DIRECT_LONG_MINUTES}


def server_args(mode: str) -> list[str]:
    """hlss's defaults spelled out (as every section does), plus the delivery mode."""
    return [*hlss_args(720), "--direct", MODES[mode]]


def deliveries(h: Hlss) -> dict[str, int]:
    """How many streams the server delivers each way, by reason: {"direct/…": 2, "transcode/…": 1}."""
    out: dict[str, int] = {}
    for key, value in h.metrics().items():
        if key.startswith("hlss_stream_delivery{") and value:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', key))
            name = f"{labels.get('delivery', '?')}/{labels.get('reason', '')}".rstrip("/")
            out[name] = out.get(name, 0) + 1
    return out


def delivered_as(d: dict[str, int]) -> str:
    """'direct', 'transcode', 'mixed' or 'unknown' (a build without the metric)."""
    kinds = {k.split("/")[0] for k in d}
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "unknown")


def fetch(h: Hlss, path: str, deadline: float, out: dict) -> bytes:
    """GET `path`, retrying a 503 after its Retry-After (at most 1 s) until `deadline`."""
    while True:
        try:
            return h.get(path, timeout=max(1.0, deadline - time.monotonic()))
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() >= deadline:
                raise
            out["retries"] = out.get("retries", 0) + 1
            time.sleep(min(1.0, float(e.headers.get("Retry-After") or 1)))


def player(h: Hlss, name: str, deadline: float, out: dict) -> None:
    """One viewer (see the module docstring); fills `out` with its stalls and timings."""
    stalls, stalled = 0, 0.0
    try:
        t_req = time.monotonic()
        text = fetch(h, f"hls/{name}/index.m3u8", deadline, out).decode()
        if "#EXT-X-STREAM-INF" in text:
            # hlss answers with a master playlist; a static server with the media playlist.
            text = fetch(h, f"hls/{name}/{playlist_uris(text)[0]}", deadline, out).decode()
        uris, durs = playlist_uris(text), playlist_durations(text)
        target = min(PLAY, sum(durs))
        end = 0.0  # media seconds buffered
        pos, t_pos = 0.0, None  # playhead position at wall time t_pos (None: not playing yet)
        for k, uri in enumerate(uris):
            if t_pos is not None:
                head = pos + time.monotonic() - t_pos
                if head >= target:
                    break
                wait = min(end - AHEAD - head, target - head)
                if wait > 0:
                    time.sleep(wait)
                    if pos + time.monotonic() - t_pos >= target:
                        break
            fetch(h, f"hls/{name}/{uri}", deadline, out)
            now = time.monotonic()
            if t_pos is not None:
                dry = t_pos + (end - pos)  # when the buffer ran out
                if now > dry:
                    stalls += 1
                    stalled += now - dry
                    pos, t_pos = end, now
            end += durs[k]
            if t_pos is None and (end >= START_BUFFER or k == len(uris) - 1):
                pos, t_pos = 0.0, now
                out["startup"] = now - t_req
                out["playing_at"] = now
        if t_pos is not None:
            finish = t_pos + (min(end, target) - pos)
            time.sleep(max(0.0, finish - time.monotonic()))
            out["ended_at"] = finish
            out["played"] = min(end, target)
            out["done"] = end >= target
    except Exception as e:  # noqa: BLE001 - reported in the table
        out["error"] = repr(e)
    out["stalls"], out["stalled_s"] = stalls, stalled


class Static:
    """A static HTTP server (nginx) with `Hlss.get`'s signature, so the same players can play from it."""

    def __init__(self, base: str):
        self.base = base.rstrip("/") + "/"

    def get(self, path: str, timeout: float = 60.0) -> bytes:
        return http_get(self.base + path.lstrip("/"), timeout)


def play_together(server, names: list[str], sample) -> tuple[list[dict], float, float]:
    """One player per name, all started at once; `sample()` runs every 0.5 s until they are done.
    Returns the players' figures, the start time and the wall time."""
    deadline = time.monotonic() + START_LIMIT + PLAY * 2 + 30
    outs = [dict() for _ in names]
    threads = [threading.Thread(target=player, args=(server, name, deadline, out), daemon=True)
               for name, out in zip(names, outs)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        sample()
        time.sleep(0.5)
    return outs, t0, time.monotonic() - t0


def player_figures(outs: list[dict]) -> dict:
    n = len(outs)
    r = {
        "viewers": n, "stalls": sum(o["stalls"] for o in outs), "stalled_s": sum(o["stalled_s"] for o in outs),
        "viewers_stalled": sum(1 for o in outs if o["stalls"]),
        "errors": [o["error"] for o in outs if "error" in o], "retries_503": sum(o.get("retries", 0) for o in outs),
        "finished": sum(1 for o in outs if o.get("done")), "startup": summary([o.get("startup") for o in outs]),
        "media_played_s": sum(o.get("played", 0.0) for o in outs),
    }
    r["clean"] = r["stalls"] == 0 and not r["errors"] and r["finished"] == n
    return r


def _log_rung(r: dict, extra: str = "") -> None:
    log(f"direct: {r['viewers']} viewers, {r['mode']} ({r['delivered_as']}): {r['stalls']} stalls "
        f"({r['viewers_stalled']} viewers, {r['stalled_s']:.1f} s), errors {len(r['errors'])}, "
        f"503 retries {r['retries_503']}, start {r['startup']['median']:.2f} s (max {r['startup']['max']:.2f})"
        + extra)


def viewers(sources: list[Source], n: int, mode: str) -> dict:
    """One rung of the ladder: N players of N distinct files on a fresh server."""
    args = server_args(mode)
    if mode == "transcode":
        args += ["--max-transcodes", str(n)]
    with Hlss(sources[0].path.parent, *args, log_name=f"direct-viewers-{mode}-{n}") as h:
        time.sleep(0.5)
        rss0 = h.status().get("VmRSS", 0)
        cpu0 = proc_cpu(h.pid)
        samples: list[tuple[float, int]] = []
        held: list[tuple[float, float]] = []
        peaks = {"direct_runs": 0.0, "transcodes": 0.0}

        def sample():
            samples.append((time.monotonic(), h.status().get("VmRSS", 0)))
            if len(samples) % 4 == 1:
                m = h.metrics()
                held.append((time.monotonic(), m.get("hlss_bytes_held", 0.0)))
                peaks["direct_runs"] = max(peaks["direct_runs"], m.get("hlss_direct_runs_running", 0.0))
                peaks["transcodes"] = max(peaks["transcodes"], m.get("hlss_transcodes_running", 0.0))

        outs, t0, wall = play_together(h, [s.path.name for s in sources[:n]], sample)
        cpu = proc_cpu(h.pid) - cpu0
        delivery = deliveries(h)
    starts = [o["playing_at"] for o in outs if "playing_at" in o]
    ends = [o["ended_at"] for o in outs if "ended_at" in o]
    plateau_from, plateau_to = (max(starts), min(ends)) if len(starts) == n and ends else (t0, t0 + wall)
    plateau = [rss for t, rss in samples if plateau_from <= t <= plateau_to] or [rss for _, rss in samples]
    rss = statistics.median(plateau) if plateau else 0
    held_plateau = [b for t, b in held if plateau_from <= t <= plateau_to] or [b for _, b in held]
    r = player_figures(outs)
    r.update({
        "mode": mode, "delivery": delivery, "delivered_as": delivered_as(delivery),
        "rss_idle_kib": rss0, "rss_plateau_kib": rss, "rss_peak_kib": max((s for _, s in samples), default=0),
        "plateau_samples": len(plateau), "rss_per_viewer_kib": (rss - rss0) / n,
        "bytes_held_plateau": statistics.median(held_plateau) if held_plateau else 0.0,
        "cpu_s": cpu, "wall_s": wall, "cpu_s_per_media_hour": ratio(cpu, r["media_played_s"] / 3600),
        "max_direct_runs": peaks["direct_runs"], "max_transcodes": peaks["transcodes"],
    })
    _log_rung(r, f", RSS {rss0 / 1024:.0f} -> {rss / 1024:.0f} MiB ({r['rss_per_viewer_kib'] / 1024:.1f} MiB/viewer), "
                 f"CPU {cpu:.1f} s over {wall:.0f} s")
    return r


def nginx_viewers(sources: list[Source], n: int) -> dict:
    """The client's own check: the same N players against nginx serving `ffmpeg -c copy -f hls`
    segments of the same files from disk (made beforehand, not timed). If these stall, the players
    (or the machine) are the bound, not hlss."""
    tmp = WORK / "tmp" / "direct-nginx"
    root = tmp / "www"
    for src in sources[:n]:
        out = root / "hls" / src.path.name
        playlist = out / "index.m3u8"
        if not playlist.exists() or "#EXT-X-ENDLIST" not in playlist.read_text():
            fresh_dir(out)
            subprocess.run(ffmpeg_copy_hls(src.path, out), check=True, timeout=300)
    nginx, base = start_nginx(tmp, root, f"/hls/{sources[0].path.name}/index.m3u8")
    try:
        outs, _, wall = play_together(Static(base), [s.path.name for s in sources[:n]], lambda: None)
    finally:
        stop(nginx)
    r = player_figures(outs)
    r.update({"mode": "nginx", "delivered_as": "ffmpeg -c copy segments", "wall_s": wall})
    _log_rung(r)
    return r


def ladder(sources: list[Source]) -> dict:
    """Both ladders, interleaved rung by rung; each stops after its first rung with at least one
    stall per viewer (the transcoded one soon: that bounds the section's time)."""
    out: dict[str, dict] = {"direct": {}, "transcode": {}}
    going = {"direct": True, "transcode": True}
    for n in LADDER:
        for mode in ("direct", "transcode"):
            if going[mode] and n <= len(sources):
                r = viewers(sources, n, mode)
                out[mode][str(n)] = r
                if r["stalls"] >= n or len(r["errors"]) == n:
                    going[mode] = False
    top = max((int(n) for n in out["direct"]), default=0)
    if top:
        out["nginx"] = {str(top): nginx_viewers(sources, top)}
    for mode in ("direct", "transcode"):
        clean = [int(n) for n, r in out[mode].items() if r["clean"]]
        bad = [int(n) for n, r in out[mode].items() if not r["clean"]]
        # The largest N that played clean with every smaller rung clean too.
        out[f"{mode}_max_clean"] = max((n for n in clean if all(b > n for b in bad)), default=0)
    return out


def ffmpeg_first(src: Source, seek: float = 0.0) -> dict:
    out = fresh_dir(WORK / "tmp" / "direct-ffmpeg-copy")
    cmd = ffmpeg_copy_hls(src.path, out, seek=seek)
    seen = time_listing(cmd, out)
    return {"first": seen.get(1), "three": seen.get(3), "cmd": cmd}


def first_segment(src: Source, runs: int = RUNS) -> dict:
    """Item 2: cold playlist + segment 0, direct / transcoded / ffmpeg -c copy, round-robin."""
    raw: dict[str, list] = {"direct": [], "transcode": [], "ffmpeg": []}
    cmd = None
    for run in range(runs + 1):
        rs = {mode: hlss_cold(src, "vod", extra=("--direct", MODES[mode]), inspect=deliveries) for mode in MODES}
        ff = ffmpeg_first(src)
        cmd = ff.pop("cmd")
        if run:
            for mode, r in rs.items():
                raw[mode].append(r)
            raw["ffmpeg"].append(ff)
        log(f"direct: first segment run {run}/{runs}: direct {rs['direct']['segment']:.3f} s "
            f"({delivered_as(rs['direct']['inspect'])}), transcode {rs['transcode']['segment']:.3f} s, "
            f"ffmpeg -c copy {ff['first'] or float('nan'):.3f} s" + ("" if run else " (warm-up)"))
    out = {"label": src.label, "file": src.path.name, "cmd": cmd, "raw": raw,
           "ffmpeg_first": summary([r["first"] for r in raw["ffmpeg"]]),
           "ffmpeg_three": summary([r["three"] for r in raw["ffmpeg"]])}
    for mode in MODES:
        out[f"{mode}_playlist"] = summary([r["playlist"] for r in raw[mode]])
        out[f"{mode}_segment"] = summary([r["segment"] for r in raw[mode]])
        out[f"{mode}_delivered_as"] = delivered_as(raw[mode][-1]["inspect"]) if raw[mode] else "unknown"
    out["ratio_ffmpeg"] = ratio(out["direct_segment"]["median"], out["ffmpeg_first"]["median"])
    return out


def cold_seek(longs: dict[str, Source], runs: int = RUNS, fraction: float = SEEK_FRACTION) -> dict:
    """Item 3: fresh server, playlist, then the segment at `fraction`, per container; ffmpeg -ss as reference."""
    out = {}
    for key, src in longs.items():
        raw: dict[str, list] = {"hlss": [], "ffmpeg": []}
        for run in range(runs + 1):
            r = hlss_cold(src, "vod", seek_fraction=fraction, extra=("--direct", "auto"), inspect=deliveries)
            ff = ffmpeg_first(src, seek=fraction * src.seconds)
            ff.pop("cmd")
            if run:
                raw["hlss"].append(r)
                raw["ffmpeg"].append(ff)
            log(f"direct: cold seek {key} run {run}/{runs}: playlist {r['playlist']:.3f} s, segment "
                f"{r['index']}/{r['listed']} {r['segment']:.3f} s ({delivered_as(r['inspect'])}), "
                f"ffmpeg -ss -c copy {ff['first'] or float('nan'):.3f} s" + ("" if run else " (warm-up)"))
        last = raw["hlss"][-1] if raw["hlss"] else {}
        out[key] = {
            "label": src.label, "seconds": src.seconds, "bytes": src.path.stat().st_size, "fraction": fraction,
            "index": last.get("index"), "listed": last.get("listed"),
            "delivered_as": delivered_as(last.get("inspect", {})),
            "playlist": summary([r["playlist"] for r in raw["hlss"]]),
            "seek": summary([r["segment"] for r in raw["hlss"]]),
            "segment_only": summary([r["segment_only"] for r in raw["hlss"]]),
            "ffmpeg_first": summary([r["first"] for r in raw["ffmpeg"]]),
            "raw": raw,
        }
        out[key]["ratio_ffmpeg"] = ratio(out[key]["seek"]["median"], out[key]["ffmpeg_first"]["median"])
    return out


def hlss_cpu(sources: list[Source], mode: str) -> dict:
    """hlss's CPU seconds to serve every segment of `sources`, pulled in order as fast as they come."""
    with Hlss(sources[0].path.parent, *server_args(mode), log_name=f"direct-cpu-{mode}") as h:
        time.sleep(0.5)
        cpu0, t0 = proc_cpu(h.pid), time.monotonic()
        media, total = 0.0, 0
        for src in sources:
            text = h.media_playlist(src.path.name)
            media += sum(playlist_durations(text))
            for uri in playlist_uris(text):
                total += len(h.get(f"hls/{src.path.name}/{uri}", timeout=120))
        cpu, wall = proc_cpu(h.pid) - cpu0, time.monotonic() - t0
        delivery = deliveries(h)
    return {"cpu_s": cpu, "wall_s": wall, "media_s": media, "bytes": total, "delivery": delivery,
            "delivered_as": delivered_as(delivery), "cpu_s_per_media_hour": ratio(cpu, media / 3600)}


def ffmpeg_cpu(sources: list[Source]) -> dict:
    """`ffmpeg -c copy -f hls` of the same files, one after another: CPU from wait4's rusage."""
    cpu, media, t0 = 0.0, 0.0, time.monotonic()
    for src in sources:
        out = fresh_dir(WORK / "tmp" / "direct-ffmpeg-cpu")
        proc = spawn(ffmpeg_copy_hls(src.path, out))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop(proc)
        cpu += usage.ru_utime + usage.ru_stime
        media += src.seconds
    return {"cpu_s": cpu, "wall_s": time.monotonic() - t0, "media_s": media,
            "cpu_s_per_media_hour": ratio(cpu, media / 3600)}


def cpu_per_hour(sources: list[Source]) -> dict:
    files = sources[:CPU_FILES]
    out = {"files": len(files), "ffmpeg": ffmpeg_cpu(files)}
    for mode in MODES:
        out[mode] = hlss_cpu(files, mode)
        log(f"direct: CPU {mode} ({out[mode]['delivered_as']}): {out[mode]['cpu_s']:.2f} s for "
            f"{out[mode]['media_s']:.0f} s of media = {out[mode]['cpu_s_per_media_hour']:.1f} CPU s per hour")
    log(f"direct: CPU ffmpeg -c copy: {out['ffmpeg']['cpu_s']:.2f} s = "
        f"{out['ffmpeg']['cpu_s_per_media_hour']:.1f} CPU s per hour")
    out["ratio_ffmpeg"] = ratio(out["direct"]["cpu_s_per_media_hour"], out["ffmpeg"]["cpu_s_per_media_hour"])
    out["ratio_transcode"] = ratio(out["direct"]["cpu_s_per_media_hour"], out["transcode"]["cpu_s_per_media_hour"])
    return out


def direct() -> dict:
    started = time.monotonic()
    load_start = os.getloadavg()
    sources = make_direct_set(max(LADDER + [CPU_FILES]))
    longs = make_direct_long()
    out = {"settings": settings(), "load_start": load_start,
           "source": {"label": sources[0].label, "seconds": sources[0].seconds,
                      "kbps": sources[0].path.stat().st_size * 8 / sources[0].seconds / 1000},
           "long": {k: {"label": s.label, "seconds": s.seconds, "bytes": s.path.stat().st_size}
                    for k, s in longs.items()}}
    out["first_segment"] = first_segment(sources[0])
    out["seek"] = cold_seek(longs)
    out["cpu"] = cpu_per_hour(sources)
    out["ladder"] = ladder(sources)
    out["load_end"] = os.getloadavg()
    out["duration_s"] = time.monotonic() - started
    return out
