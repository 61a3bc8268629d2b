# Viewers through the shipped nginx cache tier vs straight to one origin vs plain round robin: origin CPU per viewer.
"""Section `tier`: what the cache tier in deploy/nginx/hlss-cache.conf saves the origins.

For one transcoded and one direct-stream file, N viewers (BENCH_TIER_VIEWERS, 8) start together
and each fetches the whole file as a player would (master, variant, every segment, as fast as
they come). Three set-ups, each with fresh origins and an empty cache, interleaved
BENCH_TIER_RUNS (3) times:

- straight: the viewers talk to one origin (the baseline);
- tier: nginx with the shipped configuration (addresses filled in) before two origins;
- round robin: nginx before the same two origins with no hashing and no cache, what a generic
  load balancer does.

Reported: origin CPU seconds (utime + stime of every origin) per viewer, requests that reached
an origin, nginx's own CPU, wall time; ratios against straight, measured in the same run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import (ROOT, WORK, Hlss, env_int, free_port, http_get, log, playlist_uris, proc_cpu,
                    spawn, stop, wait_until)

VIEWERS = env_int("BENCH_TIER_VIEWERS", 8)
RUNS = env_int("BENCH_TIER_RUNS", 3)
SHIPPED = ROOT / "deploy" / "nginx" / "hlss-cache.conf"
ROUND_ROBIN = """
upstream hlss_origins {{
{servers}
    keepalive 32;
}}
server {{
    listen 127.0.0.1:{port};
    access_log {dir}/access.log;
    location / {{
        proxy_pass http://hlss_origins;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }}
}}
"""
MAIN = """daemon off; master_process off; error_log {dir}/error.log; pid {dir}/nginx.pid;
events {{}}
http {{
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


def shipped(origins: list[str], port: int, folder: Path) -> str:
    """deploy/nginx/hlss-cache.conf with these origins, this port and folders under `folder`."""
    out, written = [], False
    for line in SHIPPED.read_text().splitlines():
        if "# EDIT: origin" in line:
            options = line.split(";")[0].split(None, 2)[2]
            if not written:
                out += [f"    server {o} {options};" for o in origins]
                written = True
            continue
        if "# EDIT: address" in line:
            line = f"    listen 127.0.0.1:{port};"
        line = line.replace("/var/cache/nginx/hlss", str(folder / "cache"))
        line = line.replace("/var/log/nginx/hlss-cache.log", str(folder / "access.log"))
        out.append(line)
    return "\n".join(out) + "\n"


def start_nginx(site: str, folder: Path, port: int) -> subprocess.Popen:
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(MAIN.format(dir=folder))
    nginx = spawn(["nginx", "-p", folder, "-c", folder / "nginx.conf"], stdout=subprocess.DEVNULL,
                  stderr=open(folder / "nginx.stderr", "wb"))

    def up() -> bool:
        try:
            http_get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return True
        except OSError:
            return False

    if not wait_until(up, timeout=10, interval=0.05):
        stop(nginx)
        raise RuntimeError(f"nginx did not start: see {folder}")
    return nginx


def responses(origin: Hlss) -> float:
    """Responses the origin has answered, every status (this /metrics one is counted only after
    it is answered)."""
    return sum(v for k, v in origin.metrics().items() if k.startswith("hlss_http_responses_total{"))


def watch(base: str, name: str, errors: list[str]) -> int:
    """One viewer: master, variant, every segment. Returns the bytes received."""
    got = 0
    try:
        master = http_get(f"{base}/hls/{name}/index.m3u8", 120).decode()
        variant = playlist_uris(master)[0]
        media = http_get(f"{base}/hls/{name}/{variant}", 120).decode()
        for uri in playlist_uris(media):
            got += len(http_get(f"{base}/hls/{name}/{uri}", 120))
    except OSError as e:
        errors.append(str(e))
    return got


def one(setup: str, source: Path, args: list[str]) -> dict:
    """One run of `setup` on `source`: fresh origins, fresh nginx, N viewers at once."""
    origins = [Hlss(source.parent, *args, log_name=f"tier-{setup}-{i}")
               for i in range(1 if setup == "straight" else 2)]
    folder = Path(tempfile.mkdtemp(prefix=f"tier-{setup}-", dir=WORK))
    nginx = None
    try:
        addresses = [o.base.removeprefix("http://").rstrip("/") for o in origins]
        if setup == "straight":
            base = origins[0].base.rstrip("/")
        else:
            port = free_port()
            site = (shipped(addresses, port, folder) if setup == "tier" else
                    ROUND_ROBIN.format(servers="\n".join(f"    server {a};" for a in addresses),
                                       port=port, dir=folder))
            nginx = start_nginx(site, folder, port)
            base = f"http://127.0.0.1:{port}"
        cpu0 = [proc_cpu(o.pid) for o in origins]
        ncpu0 = proc_cpu(nginx.pid) if nginx else 0.0
        requests0 = sum(responses(o) for o in origins)
        errors: list[str] = []
        received = [0] * VIEWERS
        started = time.monotonic()

        def viewer(i: int) -> None:
            received[i] = watch(base, source.name, errors)

        threads = [threading.Thread(target=viewer, args=(i,)) for i in range(VIEWERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        cpu = sum(proc_cpu(o.pid) - c for o, c in zip(origins, cpu0))
        ncpu = (proc_cpu(nginx.pid) - ncpu0) if nginx else 0.0
        # Less the first /metrics request of each origin, counted after it was answered.
        reached = sum(responses(o) for o in origins) - requests0 - len(origins)
        return {"origin_cpu_per_viewer": cpu / VIEWERS, "origin_requests": reached,
                "nginx_cpu": ncpu, "wall": wall, "errors": errors[:3], "bytes": sum(received)}
    finally:
        if nginx:
            stop(nginx)
        for o in origins:
            o.close()


def tier(sources: dict[str, Path], args: list[str]) -> dict:
    out: dict = {"viewers": VIEWERS, "runs": RUNS, "files": {}}
    for kind, source in sources.items():
        raw: dict[str, list[dict]] = {"straight": [], "tier": [], "round_robin": []}
        for run in range(RUNS):
            for setup in raw:
                log(f"tier: {kind} {setup} run {run + 1}/{RUNS}")
                raw[setup].append(one(setup, source, args))
        summary = {}
        for setup, results in raw.items():
            summary[setup] = {key: statistics.median(r[key] for r in results)
                              for key in ("origin_cpu_per_viewer", "origin_requests", "nginx_cpu", "wall")}
            summary[setup]["errors"] = sum(len(r["errors"]) for r in results)
            summary[setup]["samples"] = [round(r["origin_cpu_per_viewer"], 3) for r in results]
        base = summary["straight"]["origin_cpu_per_viewer"]
        for setup in summary:
            summary[setup]["cpu_ratio"] = summary[setup]["origin_cpu_per_viewer"] / base if base else float("nan")
        out["files"][kind] = {"file": source.name, **summary}
    return out


def main() -> None:
    """`python3 bench/tier.py`: this section alone, printed."""
    import json
    import media
    import tools
    src = media.make_all()
    direct = media.make_direct_set(1)[0]
    sources = {"transcode (720p H.264, 8 s GOP)": src["h264_720p"].path, "direct (1080p H.264)": direct.path}
    print(json.dumps(tier(sources, tools.hlss_args(720)), indent=1))


if __name__ == "__main__":
    main()
