#!/usr/bin/env python3
# Reproduces the profiling evidence quoted in bench/notes.md: perf while serving, RSS retention after clean-up.
"""Profiling helpers for the figures that miss (or nearly miss) their targets. Run after a
`make bench` (it reuses target/bench/media):

    python3 bench/profile.py serve     # perf record of hlss while wrk fetches in-memory segments
    python3 bench/profile.py memory    # RSS after idle clean-up: as is, after malloc_trim(0) (gdb),
                                       # and with MALLOC_MMAP_THRESHOLD_=262144
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK, Hlss, log, playlist_uris, spawn, stop, wait_until  # noqa: E402


def serve() -> None:
    import serving

    src = next((WORK / "media").glob("h264_720p_*.mp4"))
    name = src.name
    with Hlss(src, "--read-ahead", "1000", "--idle-timeout", "3600", log_name="profile-serve") as h:
        paths = []
        for uri in playlist_uris(h.media_playlist(name)):
            seg = uri.split("?")[0]
            h.get(f"hls/{name}/{seg}", timeout=120)
            paths.append(f"/hls/{name}/{seg}")
        wait_until(lambda: h.metric("hlss_transcodes_running") == 0, timeout=60, interval=0.5)
        script = WORK / "tmp" / "profile.lua"
        script.write_text(serving.WRK_LUA.format(paths=", ".join(f'"{p}"' for p in paths)))
        data = WORK / "perf.serve.data"
        perf = spawn(["perf", "record", "-F", "999", "-g", "-p", str(h.pid), "-o", data, "--", "sleep", "8"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        r = serving.run_wrk(h.base.rstrip("/"), script)
        perf.wait(30)
        stop(perf)
    print(f"hlss: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.1f} ms")
    out = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio"],
                         capture_output=True, text=True).stdout
    print("top symbols (self time):")
    for line in [l for l in out.splitlines() if l.strip()[:1].isdigit()][:12]:
        print("  " + " ".join(line.split()))


def memory() -> None:
    import memory as mem

    src = next((WORK / "media").glob("h264_720p_*.mp4"))
    mem.memory(src, counts=[1])  # makes the hard links
    folder = WORK / "tmp" / "memory"
    for env in ({}, {"MALLOC_MMAP_THRESHOLD_": "262144"}):
        os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)
        os.environ.update(env)
        with Hlss(folder, "--max-transcodes", "8", "--idle-timeout", "5", log_name="profile-memory") as h:
            for rnd in range(2):
                outs = [{} for _ in range(4)]
                threads = [threading.Thread(target=mem.player, args=(h, f"stream{i + 1}{src.suffix}",
                                                                      time.monotonic() + 200, outs[i]))
                           for i in range(4)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                peak = h.status()["VmHWM"] // 1024
                wait_until(lambda: h.metric("hlss_streams") == 0, timeout=60, interval=0.25)
                time.sleep(1)
                print(f"{env or 'default malloc'}: round {rnd + 1} with 4 streams: peak {peak} MiB, "
                      f"after idle clean-up {h.status()['VmRSS'] // 1024} MiB "
                      f"(segment bytes held {h.metric('hlss_bytes_held'):.0f})", flush=True)
            subprocess.run(["gdb", "-p", str(h.pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
                           capture_output=True, timeout=120)
            print(f"{env or 'default malloc'}: after malloc_trim(0): {h.status()['VmRSS'] // 1024} MiB")
    os.environ.pop("MALLOC_MMAP_THRESHOLD_", None)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "serve":
        serve()
    elif what == "memory":
        memory()
    else:
        log(__doc__)
        sys.exit(2)
