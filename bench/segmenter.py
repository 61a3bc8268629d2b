# Runs the criterion bench (benches/segmenter.rs: segmenter vs memcpy) and reads its figures back.
"""Section 6: `cargo bench --bench segmenter` (criterion; its input is a 720p TS stream it makes with
gst-launch-1.0). Its full output goes to target/bench/logs/criterion.log."""

from __future__ import annotations

import re
import subprocess

from common import ROOT, WORK, log

UNITS = {"B/s": 1e-6, "KiB/s": 1024 / 1e6, "MiB/s": 1024**2 / 1e6, "GiB/s": 1024**3 / 1e6,
         "KB/s": 1e-3, "MB/s": 1.0, "GB/s": 1e3}


def criterion() -> dict:
    WORK.joinpath("logs").mkdir(parents=True, exist_ok=True)
    log_path = WORK / "logs" / "criterion.log"
    proc = subprocess.run(["cargo", "bench", "--locked", "--bench", "segmenter"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    text = proc.stdout + "\n--- stderr ---\n" + proc.stderr
    log_path.write_text(text)
    if proc.returncode != 0:
        log(f"criterion: cargo bench failed (exit {proc.returncode}); see {log_path}")
        return {"error": f"cargo bench exited {proc.returncode}", "log": str(log_path)}
    out: dict = {"log": str(log_path), "criterion": {}, "summary": {}}
    # criterion: "segmenter/memcpy ... thrpt:  [lo mid hi]" (the middle figure is the estimate)
    for name, mid, unit in re.findall(
        r"segmenter/([^\n]+?)\s*\n?\s+time:.*?\n\s+thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", text, re.S
    ):
        out["criterion"][name.strip()] = float(mid) * UNITS.get(unit, float("nan"))
    # the bench's closing summary: best of 5 each, memcpy measured in the same run
    for name, mbs, pct in re.findall(r"^(memcpy|segment, [^\n]+?)\s+(\d+)\s+(\d+)%$", proc.stdout, re.M):
        out["summary"][name.strip()] = {"mb_s": float(mbs), "of_memcpy": float(pct) / 100}
    goal = re.search(r"^goal: (.*)$", proc.stdout, re.M)
    out["goal"] = goal.group(1) if goal else ""
    m = re.search(r"stream: ([0-9.]+) MB", text)
    out["stream_mb"] = float(m.group(1)) if m else None
    log(f"criterion: {out['summary']}")
    return out
