# Shared helpers for bench/: child processes that are always cleaned up, the hlss server, HTTP, statistics.
"""Helpers shared by the benchmark sections (Python 3 standard library only).

Every child process goes through `spawn`, which records it; `stop_all` (run at exit and on
SIGINT/SIGTERM) ends exactly those, by process id (each child leads its own process group, so
nginx's workers and gst-launch's threads go with it).
"""

from __future__ import annotations

import atexit
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HLSS = Path(os.environ.get("BENCH_HLSS", ROOT / "target" / "release" / "hlss"))
# Everything the benchmarks write (media, logs, temp dirs, raw results) lives here.
WORK = Path(os.environ.get("BENCH_WORK", ROOT / "target" / "bench"))

_children: list[subprocess.Popen] = []


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment (BENCH_RUNS=3 ...)."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def spawn(cmd: list[str], **kw) -> subprocess.Popen:
    """Starts `cmd` in its own process group and remembers it for `stop_all`."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    proc = subprocess.Popen([str(c) for c in cmd], start_new_session=True, **kw)
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """Ends one process we started (and its process group), politely first, then with SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
    else:
        # The leader is gone; its group (nginx workers) may not be.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    for proc in list(_children):
        stop(proc, grace=2.0)


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def free_port() -> int:
    """A loopback port free right now (bind to 0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summary(xs) -> dict:
    """Median, min, max and count of a list of figures (NaN when empty)."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def ratio(a: float, b: float) -> float:
    try:
        return a / b
    except (TypeError, ZeroDivisionError):
        return float("nan")


def wait_until(pred, timeout: float, interval: float = 0.005):
    """Polls `pred` until it returns something truthy or `timeout` passes; returns its last value."""
    end = time.monotonic() + timeout
    value = pred()
    while not value and time.monotonic() < end:
        time.sleep(interval)
        value = pred()
    return value


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM ... of a process, in KiB (empty once it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Vm"):
                    key, _, rest = line.partition(":")
                    out[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far, all its threads (NaN once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()  # fields[0] is field 3 (state) of proc(5)
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def playlist_uris(text: str) -> list[str]:
    return [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("#")]


def playlist_durations(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"#EXTINF:([0-9.]+)", text)]


class Hlss:
    """One hlss process on a loopback port, with helpers to talk to it."""

    def __init__(self, media: Path, *args: str, log_name: str = "hlss"):
        WORK.joinpath("logs").mkdir(parents=True, exist_ok=True)
        self.log_path = WORK / "logs" / f"{log_name}.log"
        self._log = open(self.log_path, "ab")
        cmd = [HLSS, "--listen", "127.0.0.1:0", *args, media]
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=self._log)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.search(r"(http://\S+/)", line)
        if not m:
            self.close()
            raise RuntimeError(f"hlss did not start (log: {self.log_path}): {line!r}")
        self.base = m.group(1)
        http_get(self.base + "healthz", timeout=10)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, path: str) -> str:
        return self.base + path.lstrip("/")

    def get(self, path: str, timeout: float = 60.0) -> bytes:
        return http_get(self.url(path), timeout)

    def media_playlist(self, name: str, timeout: float = 60.0) -> str:
        """What a player does first: the file's master playlist, then its variant's media
        playlist (beside it, so segment URIs stay relative to `hls/<name>/`)."""
        master = self.get(f"hls/{name}/index.m3u8", timeout).decode()
        variant = playlist_uris(master)[0]
        return self.get(f"hls/{name}/{variant}", timeout).decode()

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in self.get("metrics", 10).decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    pass
        return out

    def metric(self, name: str, default: float = 0.0) -> float:
        return self.metrics().get(name, default)

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def close(self) -> None:
        stop(self.proc)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
