# Segment serving over loopback with wrk (64 connections): hlss from memory vs nginx serving the same bytes from disk.
"""Section 4. hlss transcodes the 720p clip completely first (every segment in memory, no transcode
running), its segments are written byte for byte under a temp dir, and a non-daemon nginx
(generated config, loopback port, 2 workers = cores, sendfile, access log off, keep-alive without a
request cap) serves that dir. wrk fetches the same URL paths, cycling through every segment, from
both, alternating servers run by run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from common import WORK, Hlss, env_int, free_port, http_get, log, playlist_uris, spawn, stop, summary, wait_until
from media import Source
from tools import hlss_args

RUNS = env_int("BENCH_SERVE_RUNS", 5)
SECONDS = env_int("BENCH_SERVE_SECONDS", 8)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 64)
THREADS = env_int("BENCH_WRK_THREADS", 2)

NGINX_CONF = """\
daemon off;
master_process on;
worker_processes {workers};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    types {{ video/mp2t ts; application/vnd.apple.mpegurl m3u8; }}
    default_type application/octet-stream;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""

WRK_LUA = """\
-- cycles through every segment path
local paths = {{ {paths} }}
local i = 0
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def nginx_version() -> str:
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return out.replace("nginx version: ", "")


def run_wrk(base: str, script: Path) -> dict:
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "--timeout", "10s",
           "-s", str(script), base]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=SECONDS + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    lat = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    m = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "requests": int(m.group(1)) if m else 0,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errs.group(1).strip() if errs else "", "raw": out}


def _ms(v: str) -> float:
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", v)
    x, unit = float(m.group(1)), m.group(2)
    return x * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def serving(src: Source, runs: int = RUNS) -> dict:
    tmp = WORK / "tmp" / "serve"
    shutil.rmtree(tmp, ignore_errors=True)
    root = tmp / "www"
    name = src.path.name
    seg_dir = root / "hls" / name
    seg_dir.mkdir(parents=True)
    with Hlss(src.path, *hlss_args(720), "--read-ahead", "1000", "--idle-timeout", "3600",
              log_name="serve") as h:
        uris = playlist_uris(h.media_playlist(name))
        paths = []
        for uri in uris:
            seg = uri.split("?")[0]
            data = h.get(f"hls/{name}/{seg}", timeout=120)
            (seg_dir / seg).write_bytes(data)
            paths.append(f"/hls/{name}/{seg}")
        # Nothing may be transcoding while wrk runs.
        idle = wait_until(lambda: h.metric("hlss_transcodes_running") == 0, timeout=60, interval=0.5)
        made_before = h.metric(f'hlss_stream_segments_made_total{{stream="{name}"}}')
        total_bytes = sum(p.stat().st_size for p in seg_dir.iterdir())
        script = tmp / "segments.lua"
        script.write_text(WRK_LUA.format(paths=", ".join(f'"{p}"' for p in paths)))
        nginx, nginx_base = start_nginx(tmp, root, paths[0])
        try:
            # Same bytes from both servers.
            for p in (paths[0], paths[-1]):
                assert http_get(nginx_base + p) == http_get(h.base.rstrip("/") + p), p
            raw = {"hlss": [], "nginx": []}
            for run in range(runs):
                for server, base in (("hlss", h.base.rstrip("/")), ("nginx", nginx_base)):
                    r = run_wrk(base, script)
                    raw[server].append(r)
                    log(f"serving: run {run + 1}/{runs}: {server} {r['rps']:.0f} req/s, "
                        f"p99 {r['p99_ms']:.1f} ms, non-2xx {r['non2xx']}")
            made_after = h.metric(f'hlss_stream_segments_made_total{{stream="{name}"}}')
        finally:
            stop(nginx)
    out = {"segments": len(paths), "bytes": total_bytes, "mean_segment_bytes": total_bytes / len(paths),
           "transcode_idle": bool(idle), "segments_made_during_wrk": made_after - made_before,
           "raw": {k: [{kk: vv for kk, vv in r.items() if kk != "raw"} for r in v] for k, v in raw.items()},
           "wrk_output": {k: v[-1]["raw"] for k, v in raw.items()}}
    for server in raw:
        out[server] = {
            "rps": summary([r["rps"] for r in raw[server]]),
            "p50_ms": summary([r["p50_ms"] for r in raw[server]]),
            "p99_ms": summary([r["p99_ms"] for r in raw[server]]),
            "errors": sum(r["non2xx"] for r in raw[server]),
            "socket_errors": [r["socket_errors"] for r in raw[server] if r["socket_errors"]],
        }
    out["ratio_rps"] = out["hlss"]["rps"]["median"] / out["nginx"]["rps"]["median"]
    out["ratio_p99"] = out["hlss"]["p99_ms"]["median"] / out["nginx"]["p99_ms"]["median"]
    return out


def start_nginx(tmp: Path, root: Path, probe: str) -> tuple[subprocess.Popen, str]:
    """A non-daemon nginx (NGINX_CONF) serving `root` on a loopback port, its files under `tmp`;
    returns the process and its base URL once `probe` (a path under root) answers."""
    # nginx workers drop to `nobody` when started as root: let them read the tree.
    for d, _, files in os.walk(tmp):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=os.cpu_count() or 2, dir=tmp, port=port, root=root))
    nginx = spawn(["nginx", "-p", tmp, "-c", conf], stdout=subprocess.DEVNULL,
                  stderr=open(tmp / "nginx.stderr", "wb"))
    base = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: _reachable(base + probe), timeout=10, interval=0.05):
        stop(nginx)
        raise RuntimeError(f"nginx did not start: see {tmp}")
    return nginx, base


def _reachable(url: str) -> bool:
    try:
        http_get(url, timeout=2)
        return True
    except OSError:
        return False
