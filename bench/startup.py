# Time to first playlist / first segment (hlss VOD and EVENT vs ffmpeg and hlssink2), and seek latency on a long file.
"""Cold starts, measured round-robin so every tool sees the same noise.

hlss: a fresh server process per measurement (started and ready before the clock starts, as a
running server is); the clock runs from the playlist request to the end of the playlist response,
and on to the end of segment 0 (first URI of the playlist). Baselines: the clock runs from spawning
the tool until its playlist on disk lists 1 and then 3 segments (polled every 5 ms).
"""

from __future__ import annotations

import time

from common import WORK, Hlss, env_int, http_get, log, playlist_uris, summary
from media import Source
from tools import PRESET, ffmpeg_hls, fresh_dir, hlss_args, hlssink2, out_height, time_listing

RUNS = env_int("BENCH_RUNS", 5)


def max_height_for(src: Source) -> int:
    """720p sources at hlss's default; the 1080p source is kept at 1080p (--max-height 1080)."""
    return 1080 if src.height >= 1080 else 720


def hlss_cold(src: Source, mode: str, seek_fraction: float | None = None, extra: tuple[str, ...] = (),
              inspect=None) -> dict:
    """One cold request sequence on a fresh server: the playlist, then segment 0 or, with
    `seek_fraction`, the segment that far into the file. `extra` goes on hlss's command line;
    `inspect(h)`, when given, runs after the clock stops and its result is kept as "inspect"."""
    mh = max_height_for(src)
    with Hlss(src.path, *hlss_args(mh), "--playlist", mode, *extra, log_name=f"startup-{src.key}-{mode}") as h:
        name = src.path.name
        t0 = time.monotonic()
        text = h.media_playlist(name)
        t_pl = time.monotonic() - t0
        uris = playlist_uris(text)
        k = int(len(uris) * seek_fraction) if seek_fraction is not None else 0
        t1 = time.monotonic()
        h.get(f"hls/{name}/{uris[k]}")
        t_seg = time.monotonic() - t0
        out = {"playlist": t_pl, "segment": t_seg, "segment_only": time.monotonic() - t1,
               "index": k, "listed": len(uris)}
        if inspect is not None:
            out["inspect"] = inspect(h)
        return out


def baseline(tool: str, src: Source, tag: str, seek: float = 0.0) -> dict:
    mh = max_height_for(src)
    h = out_height(src.height, mh)
    out = fresh_dir(WORK / "tmp" / f"{tool}-{tag}")
    if tool == "ffmpeg":
        cmd = ffmpeg_hls(src.path, out, h, src.height, seek=seek)
    elif tool == "ffmpeg-default-tune":
        cmd = ffmpeg_hls(src.path, out, h, src.height, seek=seek, zerolatency=False)
    else:
        cmd = hlssink2(src.path, out, h, src.height, width=src.width * h // src.height)
    seen = time_listing(cmd, out)
    return {"first": seen.get(1), "three": seen.get(3), "cmd": cmd}


def first_playlist(sources: list[Source], runs: int = RUNS) -> dict:
    """Section 1: per source, medians of `runs` cold starts of each tool (one discarded warm-up)."""
    results = {}
    for src in sources:
        tools = ["hlss-vod", "hlss-event", "ffmpeg", "hlssink2"]
        if src.key == "h264_720p":
            tools.append("ffmpeg-default-tune")
        raw = {t: [] for t in tools}
        cmds = {}
        for run in range(runs + 1):
            for tool in tools:
                if tool in ("hlss-vod", "hlss-event"):
                    r = hlss_cold(src, tool.split("-")[1])
                else:
                    r = baseline(tool, src, f"{src.key}")
                    cmds[tool] = r.pop("cmd")
                if run > 0:  # run 0 warms caches for everyone and is not counted
                    raw[tool].append(r)
            log(f"first playlist: {src.key} run {run}/{runs}: " + ", ".join(
                f"{t} {_brief(raw[t][-1]) if run else 'warm-up'}" for t in tools))
        results[src.key] = {
            "label": src.label,
            "raw": raw,
            "cmds": cmds,
            "hlss_vod_playlist": summary([r["playlist"] for r in raw["hlss-vod"]]),
            "hlss_vod_segment": summary([r["segment"] for r in raw["hlss-vod"]]),
            "hlss_event_playlist": summary([r["playlist"] for r in raw["hlss-event"]]),
            "hlss_event_segment": summary([r["segment"] for r in raw["hlss-event"]]),
            **{
                f"{t}_{what}": summary([r[what] for r in raw[t]])
                for t in tools if t not in ("hlss-vod", "hlss-event") for what in ("first", "three")
            },
        }
    return results


def _brief(r: dict) -> str:
    if "playlist" in r:
        return f"{r['playlist']:.2f}/{r['segment']:.2f}s"
    return f"{r['first'] or float('nan'):.2f}/{r['three'] or float('nan'):.2f}s"


def seek(long: Source, runs: int = RUNS, fraction: float = 0.8) -> dict:
    """Section 3: cold start at segment 0 vs cold start straight at `fraction` of a long file,
    and a seek inside a stream that is already playing from the start; ffmpeg restarted with -ss
    as the reference for a disk-writing setup."""
    raw = {"start": [], "seek": [], "open_seek": [], "paused_seek": [], "ffmpeg_ss": []}
    for run in range(runs + 1):
        start = hlss_cold(long, "vod")
        cold = hlss_cold(long, "vod", seek_fraction=fraction)
        open_seek = hlss_open_seek(long, fraction)
        paused = hlss_seek_after_pause(long, fraction)
        ff = baseline("ffmpeg", long, "seek", seek=fraction * long.seconds)
        ff.pop("cmd")
        if run > 0:
            raw["start"].append(start)
            raw["seek"].append(cold)
            raw["open_seek"].append(open_seek)
            raw["paused_seek"].append(paused)
            raw["ffmpeg_ss"].append(ff)
        log(f"seek: run {run}/{runs}: start {start['segment']:.2f}s, cold seek {cold['segment']:.2f}s "
            f"(segment {cold['index']}/{cold['listed']}), open seek {open_seek:.2f}s, "
            f"seek once the run from 0 paused {paused['segment']:.2f}s, "
            f"ffmpeg -ss {ff['first'] or float('nan'):.2f}s" + ("" if run else " (warm-up)"))
    return {
        "label": long.label,
        "seconds": long.seconds,
        "fraction": fraction,
        "index": raw["seek"][-1]["index"] if raw["seek"] else None,
        "listed": raw["seek"][-1]["listed"] if raw["seek"] else None,
        "start": summary([r["segment"] for r in raw["start"]]),
        "seek": summary([r["segment"] for r in raw["seek"]]),
        "seek_segment_only": summary([r["segment_only"] for r in raw["seek"]]),
        "open_seek": summary(raw["open_seek"]),
        "paused_seek": summary([r["segment"] for r in raw["paused_seek"]]),
        "ffmpeg_ss_first": summary([r["first"] for r in raw["ffmpeg_ss"]]),
        "ffmpeg_ss_three": summary([r["three"] for r in raw["ffmpeg_ss"]]),
        "raw": raw,
    }


def hlss_seek_after_pause(src: Source, fraction: float) -> dict:
    """A cold seek without CPU contention: the playlist request starts a run at segment 0; wait
    until it has paused at its read-ahead (segments made stop growing for 1 s, at most 20 s),
    then ask for the segment at `fraction`."""
    with Hlss(src.path, *hlss_args(max_height_for(src)), log_name=f"seek-{src.key}") as h:
        name = src.path.name
        key = f'hlss_stream_segments_made_total{{stream="{name}"}}'
        uris = playlist_uris(h.media_playlist(name))
        last, since, end = -1.0, time.monotonic(), time.monotonic() + 20
        while time.monotonic() < end:
            made = h.metric(key)
            if made != last:
                last, since = made, time.monotonic()
            elif made > 0 and time.monotonic() - since >= 1.0:
                break
            time.sleep(0.1)
        k = int(len(uris) * fraction)
        t0 = time.monotonic()
        h.get(f"hls/{name}/{uris[k]}")
        return {"segment": time.monotonic() - t0, "made_before": last}


def hlss_open_seek(src: Source, fraction: float) -> float:
    """A player that started at 0, played two segments, then jumps to `fraction`: the time to that segment."""
    with Hlss(src.path, *hlss_args(max_height_for(src)), log_name=f"seek-{src.key}") as h:
        name = src.path.name
        uris = playlist_uris(h.media_playlist(name))
        h.get(f"hls/{name}/{uris[0]}")
        h.get(f"hls/{name}/{uris[1]}")
        k = int(len(uris) * fraction)
        t0 = time.monotonic()
        http_get(h.url(f"hls/{name}/{uris[k]}"))
        return time.monotonic() - t0


__all__ = ["first_playlist", "seek", "RUNS", "PRESET"]
