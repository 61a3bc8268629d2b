# Peak RSS of hlss with 1, 4 and 8 streams playing at real-time pace, and its RSS after idle clean-up.
"""Section 5. Eight names for the 720p clip (hard links: eight distinct streams) in one folder; for
each count N, a fresh hlss (`--max-transcodes 8` so every stream gets a transcode, `--idle-timeout
5` so clean-up comes soon) and N players, one per file. A player fetches the playlist, then three
segments at once and every further one a segment duration later (as a player keeping a
three-segment buffer), to the end of the file. Peak RSS is the server's VmHWM over the phase;
after the players stop, we wait for `hlss_streams` to reach 0 and read VmRSS and `hlss_bytes_held`.
A segment counts as late when it arrived after its play-out time, playback starting when segment
0 arrived."""

from __future__ import annotations

import os
import threading
import time

from common import WORK, Hlss, env_int, log, playlist_durations, playlist_uris, summary, wait_until
from media import Source
from tools import SEGMENT, hlss_args

COUNTS = [int(x) for x in os.environ.get("BENCH_STREAM_COUNTS", "1,4,8").split(",")]
IDLE_TIMEOUT = env_int("BENCH_IDLE_TIMEOUT", 5)
PHASE_LIMIT = 240.0  # seconds; players give up after this


def player(h: Hlss, name: str, stop_at: float, out: dict) -> None:
    try:
        text = h.media_playlist(name)
        uris = playlist_uris(text)
        durs = playlist_durations(text)
        t0 = time.monotonic()
        start = None
        late = 0
        worst = 0.0
        for k, uri in enumerate(uris):
            due = t0 + max(0, k - 2) * SEGMENT
            time.sleep(max(0.0, due - time.monotonic()))
            if time.monotonic() > stop_at:
                out["gave_up"] = True
                break
            h.get(f"hls/{name}/{uri}", timeout=60)
            now = time.monotonic()
            if start is None:
                start = now
            lag = now - (start + sum(durs[:k]))
            if lag > 0:
                late += 1
                worst = max(worst, lag)
        out.update(segments=len(uris), late=late, worst_lag=worst)
    except Exception as e:  # noqa: BLE001 - reported in the table
        out["error"] = repr(e)


def memory(src: Source, counts=COUNTS) -> dict:
    folder = WORK / "tmp" / "memory"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(max(counts)):
        link = folder / f"stream{i + 1}{src.path.suffix}"
        if not link.exists():
            os.link(src.path, link)
        names.append(link.name)
    results = {}
    for n in counts:
        with Hlss(folder, *hlss_args(720), "--max-transcodes", "8", "--idle-timeout", str(IDLE_TIMEOUT),
                  log_name=f"memory-{n}") as h:
            base_rss = h.status().get("VmRSS", 0)
            outs = [dict() for _ in range(n)]
            stop_at = time.monotonic() + PHASE_LIMIT
            threads = [threading.Thread(target=player, args=(h, names[i], stop_at, outs[i]), daemon=True)
                       for i in range(n)]
            t0 = time.monotonic()
            peak_held = 0.0
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                peak_held = max(peak_held, h.metric("hlss_bytes_held"))
                time.sleep(0.5)
            played = time.monotonic() - t0
            hwm = h.status().get("VmHWM", 0)
            held_end = h.metric("hlss_bytes_held")
            t1 = time.monotonic()
            closed = wait_until(lambda: h.metric("hlss_streams") == 0, timeout=IDLE_TIMEOUT + 60, interval=0.25)
            time.sleep(1.0)
            cleanup_wait = time.monotonic() - t1
            st = h.status()
            results[n] = {
                "streams": n,
                "rss_start_kib": base_rss,
                "peak_rss_kib": hwm,
                "peak_bytes_held": peak_held,
                "bytes_held_end_of_play": held_end,
                "rss_after_idle_kib": st.get("VmRSS", 0),
                "bytes_held_after_idle": h.metric("hlss_bytes_held"),
                "streams_after_idle": h.metric("hlss_streams"),
                "closed": bool(closed),
                "cleanup_wait_s": cleanup_wait,
                "played_s": played,
                "late_segments": sum(o.get("late", 0) for o in outs),
                "segments": sum(o.get("segments", 0) for o in outs),
                "worst_lag_s": max((o.get("worst_lag", 0.0) for o in outs), default=0.0),
                "errors": [o["error"] for o in outs if "error" in o],
            }
            r = results[n]
            log(f"memory: {n} streams: peak RSS {hwm / 1024:.0f} MiB, after idle "
                f"{r['rss_after_idle_kib'] / 1024:.0f} MiB, late {r['late_segments']}/{r['segments']}, "
                f"played {played:.0f}s, errors {len(r['errors'])}")
    return results
