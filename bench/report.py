# Turns the measured figures (target/bench/results.json) into the printed table and BENCHMARKS.md.
"""Markdown rendering of the benchmark results. Every figure is a median over the runs of this one
invocation, with the range (min–max) beside it; ratios are of medians measured back to back."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

NOTES = Path(__file__).resolve().parent / "notes.md"


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def s(summ: dict | None, unit: str = "s", digits: int = 2) -> str:
    """'0.65 s (0.60–0.70)' from a summary."""
    if not summ or _nan(summ.get("median")):
        return "n/a"
    m, lo, hi = summ["median"], summ["min"], summ["max"]
    if summ.get("n", 1) > 1:
        return f"{m:.{digits}f} {unit} ({lo:.{digits}f}–{hi:.{digits}f})".replace(" ()", "")
    return f"{m:.{digits}f} {unit}"


def x(v, digits: int = 2) -> str:
    return "n/a" if _nan(v) else f"{v:.{digits}f}×"


def med(summ: dict | None):
    return None if not summ else summ.get("median")


def ratio(a, b):
    if _nan(a) or _nan(b) or not b:
        return float("nan")
    return a / b


def verdict(ok) -> str:
    if ok is None:
        return "not measured"
    return "met" if ok else "**MISSED**"


def targets(r: dict) -> list[tuple[str, str, str]]:
    rows = []
    st = r.get("startup", {}).get("h264_720p")
    if st:
        seg, ff3, gst3 = med(st["hlss_vod_segment"]), med(st["ffmpeg_three"]), med(st["hlssink2_three"])
        q = ratio(seg, ff3)
        rows.append((
            "First segment delivered (720p, cold) ≤ 0.5× the time ffmpeg needs to list three segments",
            f"{seg:.2f} s vs ffmpeg {ff3:.2f} s: **{x(q)}** (vs hlssink2 {gst3:.2f} s: {x(ratio(seg, gst3))})",
            verdict(None if _nan(q) else q <= 0.5),
        ))
        pl = med(st["hlss_vod_playlist"])
        rows.append(("First playlist < 1 s (720p, VOD playlist: the default)", f"{pl:.2f} s",
                     verdict(None if _nan(pl) else pl < 1.0)))
        ev = med(st["hlss_event_playlist"])
        rows.append(("First playlist < 1 s (720p, `--playlist event`: waits for three segments)",
                     f"{ev:.2f} s ({x(ratio(ev, ff3))} ffmpeg's three-segment time)",
                     verdict(None if _nan(ev) else ev < 1.0)))
    for key, t in r.get("transcode", {}).items():
        q = t["ratio_ffmpeg"]
        rows.append((
            f"Real-time factor ≥ 1.0× ffmpeg's, same preset ({t['label']})",
            f"hlss {x(med(t['hlss']))} realtime vs ffmpeg {x(med(t['ffmpeg']))}: **{x(q)}**",
            verdict(None if _nan(q) else q >= 1.0),
        ))
    sv = r.get("serving")
    if sv:
        q = sv["ratio_rps"]
        rows.append((
            "Segment serving ≥ 1.0× nginx (requests/s, 64 connections)",
            f"{med(sv['hlss']['rps']):.0f} vs {med(sv['nginx']['rps']):.0f} req/s: **{x(q)}** "
            f"(p99 {med(sv['hlss']['p99_ms']):.1f} vs {med(sv['nginx']['p99_ms']):.1f} ms)",
            verdict(None if _nan(q) else q >= 1.0),
        ))
    sk = r.get("seek")
    if sk:
        v = med(sk["seek"])
        rows.append((
            "Seek to 80% < 1.5 s at 720p (cold: playlist + segment at 80%)",
            f"{v:.2f} s (start of file: {med(sk['start']):.2f} s)",
            verdict(None if _nan(v) else v < 1.5),
        ))
    sg = r.get("segmenter", {}).get("summary", {})
    if sg.get("memcpy") and sg.get("segment, 64 KiB pushes"):
        seg, cp = sg["segment, 64 KiB pushes"], sg["memcpy"]
        rows.append(("Segmenter (the criterion bench's own goal): ≥ 2000 MB/s and ≥ 25% of memcpy",
                     f"{seg['mb_s']:.0f} MB/s, {seg['of_memcpy']:.0%} of memcpy ({cp['mb_s']:.0f} MB/s)",
                     verdict(seg["mb_s"] >= 2000 and seg["of_memcpy"] >= 0.25)))
    rows += direct_targets(r.get("direct"))
    return rows


def _served(how: str) -> str:
    """A note when hlss did not deliver the way a direct figure assumes."""
    return "" if how == "direct" else f" (hlss delivered these as **{how}**, not direct)"


def _direct_verdict(ok, how: str) -> str:
    return verdict(ok) if how == "direct" else "not measured (no direct delivery)"


def direct_targets(d: dict | None) -> list[tuple[str, str, str]]:
    if not d:
        return []
    rows = []
    lad = d.get("ladder")
    if lad:
        dn, tn = lad["direct_max_clean"], lad["transcode_max_clean"]
        hows = {r["delivered_as"] for r in lad["direct"].values()}
        how = hows.pop() if len(hows) == 1 else "mixed"
        rows.append((
            "Direct: ≥ 50 viewers of distinct 1080p H.264 files play without a stall (this machine)",
            f"direct {dn} vs transcoded {tn}: **{x(ratio(dn, tn), 1)}**{_served(how)}",
            _direct_verdict(dn >= 50, how),
        ))
    fs = d.get("first_segment")
    if fs:
        seg, ff = med(fs["direct_segment"]), med(fs["ffmpeg_first"])
        how = fs["direct_delivered_as"]
        rows.append((
            "Direct: first segment ≤ 0.1 s (1080p, cold: playlist + segment 0)",
            f"{seg:.3f} s vs `ffmpeg -c copy -f hls` first segment {ff:.3f} s: **{x(fs['ratio_ffmpeg'])}**"
            f"{_served(how)}",
            _direct_verdict(None if _nan(seg) else seg <= 0.1, how),
        ))
    for key, sk in d.get("seek", {}).items():
        v = med(sk["seek"])
        rows.append((
            f"Direct: cold seek to {sk['fraction']:.0%} of a {sk['seconds'] / 3600:.0f}-hour file ≤ 0.2 s "
            f"({key.upper()})",
            f"{v:.3f} s vs `ffmpeg -ss -c copy -f hls` first segment {med(sk['ffmpeg_first']):.3f} s: "
            f"**{x(sk['ratio_ffmpeg'])}**{_served(sk['delivered_as'])}",
            _direct_verdict(None if _nan(v) else v <= 0.2, sk["delivered_as"]),
        ))
    return rows


def direct_table(d: dict) -> list[str]:
    """Section 7: direct streaming, `--direct auto` vs `--direct off` vs `ffmpeg -c copy`."""
    st = d["settings"]
    src = d["source"]
    out = [f"\n### 7. Direct streaming: `--direct auto` vs `--direct off` (issue 13)\n"]
    out.append(
        f"Sources: distinct MP4s ({src['label']}), {src['seconds']:.0f} s at {src['kbps']:.0f} kb/s (one x264 "
        f"`ultrafast` encode, stream-copied under different names and title tags). Both modes run the same "
        f"command (hlss's defaults spelled out) but for `--direct`; transcoded means x264 `veryfast`, 3 Mb/s, "
        f"720p. Load average at the section's start {d['load_start'][0]:.1f}, at its end "
        f"{d['load_end'][0]:.1f}; it took {d['duration_s'] / 60:.1f} min.\n")
    lad = d.get("ladder")
    if lad:
        out.append(
            f"**Viewers.** N simulated players of N different files on a fresh server, started together: each "
            f"fetches segments as fast as they come until it holds {st['start_buffer_s']:g} s, then plays at "
            f"real-time pace, keeping up to {st['ahead_s']:g} s buffered, for {st['play_s']:g} s of media. A stall "
            f"is the buffer running dry. The direct server keeps the default `--max-transcodes`; the transcoded "
            f"one gets `--max-transcodes N`. Each ladder stops after the first N with ≥ N stalls. RSS per "
            f"viewer = (median RSS while all played − RSS before) / N; CPU is hlss's utime + stime over the "
            f"phase, in cores busy on average. Segments held: `hlss_bytes_held` at the plateau / N.\n")
        out.append("At the direct ladder's top N the same players also play from nginx serving `ffmpeg -c copy "
                   "-f hls` segments of the same files (made beforehand): the check that the players themselves "
                   "keep up on this machine.\n")
        out.append(f"Largest N that played without a stall: **direct {lad['direct_max_clean']}**, "
                   f"**transcoded {lad['transcode_max_clean']}**.\n")
        out.append("| viewers | mode (delivered as) | stalls (viewers stalled, time) | start, median (max) "
                   "| finished | errors / 503 retries | RSS before → plateau | RSS per viewer (segments held) | CPU (cores) "
                   "| CPU s per hour of media played |")
        out.append("|---" * 10 + "|")
        ns = sorted({int(n) for mode in ("direct", "transcode") for n in lad[mode]})
        for n in ns:
            for mode in ("direct", "transcode", "nginx"):
                r = lad.get(mode, {}).get(str(n))
                if not r:
                    continue
                su = r["startup"]
                if mode == "nginx":
                    out.append(
                        f"| {n} | check: nginx, `ffmpeg -c copy` segments from disk | {r['stalls']} "
                        f"({r['viewers_stalled']}, {r['stalled_s']:.1f} s) | {su['median']:.2f} s ({su['max']:.2f}) "
                        f"| {r['finished']}/{n} | {len(r['errors'])} / {r['retries_503']} | | | | |")
                    continue
                out.append(
                    f"| {n} | {mode} ({r['delivered_as']}) | {r['stalls']} ({r['viewers_stalled']}, "
                    f"{r['stalled_s']:.1f} s) | {su['median']:.2f} s ({su['max']:.2f}) | {r['finished']}/{n} "
                    f"| {len(r['errors'])} / {r['retries_503']} | {r['rss_idle_kib'] / 1024:.0f} → "
                    f"{r['rss_plateau_kib'] / 1024:.0f} MiB | {r['rss_per_viewer_kib'] / 1024:.1f} MiB "
                    f"({r.get('bytes_held_plateau', 0) / 2**20 / n:.1f}) "
                    f"| {ratio(r['cpu_s'], r['wall_s']):.2f} | {r['cpu_s_per_media_hour']:.0f} |")
    fs = d.get("first_segment")
    if fs:
        out.append(f"\n**First segment** ({fs['label']}, cold, median (min–max) of {st['runs']} runs, "
                   f"round-robin). hlss: fresh server, from the playlist request to segment 0's last byte; "
                   f"ffmpeg: from spawning `ffmpeg -c copy -f hls` until its playlist lists 1 / 3 segments.\n")
        out.append("| what | playlist | playlist + segment 0 | delivered as |")
        out.append("|---|---|---|---|")
        for mode, label in (("direct", "hlss `--direct auto`"), ("transcode", "hlss `--direct off`")):
            out.append(f"| {label} | {s(fs[mode + '_playlist'], 's', 3)} | {s(fs[mode + '_segment'], 's', 3)} "
                       f"| {fs[mode + '_delivered_as']} |")
        out.append(f"| `ffmpeg -c copy -f hls`: 1 / 3 segments listed | | {s(fs['ffmpeg_first'], 's', 3)} / "
                   f"{s(fs['ffmpeg_three'], 's', 3)} | |")
        out.append(f"| direct / ffmpeg (1 segment) | | {x(fs['ratio_ffmpeg'])} | |")
        if fs.get("cmd"):
            root = str(Path(__file__).resolve().parent.parent) + "/"
            out.append(f"\nffmpeg: `{shlex.join(fs['cmd']).replace(root, '')}` (the seek and CPU references "
                       f"run the same command, with `-ss` for the seek).")
    if d.get("seek"):
        out.append(f"\n**Cold seek** (fresh server each time; the file is in the page cache after the discarded "
                   f"warm-up): the playlist, then the segment at {st['seek_fraction']:.0%}; `ffmpeg -ss -c copy "
                   f"-f hls` until its first segment is listed as the reference. The long files are a 500 kb/s "
                   f"1080p24 clip (keyframe every 2 s) repeated by stream copy: the index is a 2-hour one.\n")
        out.append("| file | size | playlist | playlist + segment at 80% | the segment alone "
                   "| ffmpeg -ss -c copy: 1 segment | hlss / ffmpeg | delivered as |")
        out.append("|---" * 8 + "|")
        for key, sk in d["seek"].items():
            out.append(
                f"| {sk['label']} | {sk['bytes'] / 1e9:.2f} GB | {s(sk['playlist'], 's', 3)} | {s(sk['seek'], 's', 3)} "
                f"(segment {sk['index']} of {sk['listed']}) | {s(sk['segment_only'], 's', 3)} "
                f"| {s(sk['ffmpeg_first'], 's', 3)} | {x(sk['ratio_ffmpeg'])} | {sk['delivered_as']} |")
    cpu = d.get("cpu")
    if cpu:
        out.append(f"\n**CPU per hour of media served**: a client pulls every segment of {cpu['files']} file(s) "
                   f"in order, each as soon as the previous one arrived; hlss's utime + stime before and after "
                   f"(/proc/PID/stat); ffmpeg's from wait4.\n")
        out.append("| what | CPU s | media | wall | CPU s per hour of media | delivered as |")
        out.append("|---|---|---|---|---|---|")
        for key, label in (("direct", "hlss `--direct auto`"), ("transcode", "hlss `--direct off`"),
                           ("ffmpeg", "`ffmpeg -c copy -f hls` to disk")):
            c = cpu[key]
            out.append(f"| {label} | {c['cpu_s']:.2f} | {c['media_s']:.0f} s | {c['wall_s']:.1f} s "
                       f"| {c['cpu_s_per_media_hour']:.1f} | {c.get('delivered_as', '')} |")
        out.append(f"| direct / ffmpeg -c copy | | | | {x(cpu['ratio_ffmpeg'])} | |")
        out.append(f"| direct / transcoded | | | | {x(cpu['ratio_transcode'], 3)} | |")
    return out


def table(r: dict) -> str:
    """The tables printed at the end of `make bench` (and the body of BENCHMARKS.md)."""
    out = []
    set_ = r.get("settings", {})
    runs = set_.get("runs")
    out.append("### Targets\n")
    out.append("| target | measured (medians) | verdict |")
    out.append("|---|---|---|")
    for a, b, c in targets(r):
        out.append(f"| {a} | {b} | {c} |")

    if "startup" in r:
        out.append(f"\n### 1. Time to first playlist and first segment (cold; median (min–max) of {runs} runs)\n")
        out.append("hlss: from the playlist request on a running server. ffmpeg / hlssink2: from spawning "
                   "the tool until its playlist on disk lists 1 or 3 segments. Ratio = hlss / baseline "
                   "(< 1: hlss is faster).\n")
        out.append("| source | hlss VOD playlist | hlss first segment (VOD) | hlss EVENT playlist (3 segments) "
                   "| ffmpeg: 1 segment | ffmpeg: 3 segments | hlssink2: 1 segment | hlssink2: 3 segments "
                   "| first segment / ffmpeg 3 | first segment / hlssink2 3 | EVENT / ffmpeg 3 | EVENT / hlssink2 3 |")
        out.append("|---" * 12 + "|")
        for key, st in r["startup"].items():
            seg, ev = med(st["hlss_vod_segment"]), med(st["hlss_event_playlist"])
            ff3, gst3 = med(st["ffmpeg_three"]), med(st["hlssink2_three"])
            out.append(
                f"| {st['label']} | {s(st['hlss_vod_playlist'])} | {s(st['hlss_vod_segment'])} "
                f"| {s(st['hlss_event_playlist'])} | {s(st['ffmpeg_first'])} | {s(st['ffmpeg_three'])} "
                f"| {s(st['hlssink2_first'])} | {s(st['hlssink2_three'])} "
                f"| {x(ratio(seg, ff3))} | {x(ratio(seg, gst3))} | {x(ratio(ev, ff3))} | {x(ratio(ev, gst3))} |"
            )
        extra = r["startup"].get("h264_720p", {})
        if "ffmpeg-default-tune_three" in extra:
            out.append(
                f"\nffmpeg with x264's default tune instead of `zerolatency` (the command as usually typed), "
                f"720p: 1 segment {s(extra['ffmpeg-default-tune_first'])}, 3 segments "
                f"{s(extra['ffmpeg-default-tune_three'])}; the tables compare against the faster, "
                f"matched `zerolatency` command."
            )

    if "transcode" in r:
        out.append(f"\n### 2. Transcode speed: real-time factor of a full transcode "
                   f"(median (min–max) of {set_.get('rtf_runs')} runs)\n")
        out.append("| source | hlss (every segment into memory) | ffmpeg → HLS on disk | hlssink2 → HLS on disk "
                   "| hlss / ffmpeg | hlss / hlssink2 | hlss's own gauge |")
        out.append("|---" * 7 + "|")
        for key, t in r["transcode"].items():
            out.append(
                f"| {t['label']}, {t['seconds']:.0f} s | {s(t['hlss'], '×')} | {s(t['ffmpeg'], '×')} "
                f"| {s(t['hlssink2'], '×')} | {x(t['ratio_ffmpeg'])} | {x(t['ratio_hlssink2'])} "
                f"| {s(t['hlss_metric'], '×')} |"
            )

        counts = {}
        for t in r["transcode"].values():
            for tool in ("ffmpeg", "hlssink2"):
                for q in t["raw"][tool]:
                    key = (tool, q.get("ended", "exited"))
                    counts[key] = counts.get(key, 0) + 1
        out.append("\nBaselines are timed until their playlist says `#EXT-X-ENDLIST` or they exit, whichever "
                   "comes first (gst-launch-1.0 with hlssink2 can hang after writing ENDLIST). How runs ended: "
                   + ", ".join(f"{tool} {how} ×{n}" for (tool, how), n in sorted(counts.items())) + ".")

    if "seek" in r:
        sk = r["seek"]
        out.append(f"\n### 3. Seek latency, {sk['label']} (cold; median (min–max) of {runs} runs)\n")
        out.append("| what | time |")
        out.append("|---|---|")
        out.append(f"| fresh server: playlist + segment 0 (start of the file) | {s(sk['start'])} |")
        out.append(f"| fresh server: playlist + segment {sk['index']} of {sk['listed']} "
                   f"({sk['fraction']:.0%} of the file) | {s(sk['seek'])} |")
        out.append(f"| … of which the segment at {sk['fraction']:.0%} alone | {s(sk['seek_segment_only'])} |")
        out.append(f"| stream playing from the start (segments 0–1 fetched), then a jump to "
                   f"{sk['fraction']:.0%} | {s(sk['open_seek'])} |")
        if "paused_seek" in sk:
            out.append(f"| the segment at {sk['fraction']:.0%} requested once the run hlss starts at segment 0 "
                       f"with the playlist has paused at its read-ahead (no CPU contention) "
                       f"| {s(sk['paused_seek'])} |")
        out.append(f"| seek/start ratio (cold) | {x(ratio(med(sk['seek']), med(sk['start'])))} |")
        out.append(f"| reference: ffmpeg restarted with `-ss` at {sk['fraction']:.0%}, until 1 / 3 segments "
                   f"listed | {s(sk['ffmpeg_ss_first'])} / {s(sk['ffmpeg_ss_three'])} |")

    if "serving" in r:
        sv = r["serving"]
        out.append(f"\n### 4. Serving segments over loopback (wrk, {set_.get('connections')} connections, "
                   f"{set_.get('wrk_threads')} threads, {set_.get('serve_seconds')} s per run, "
                   f"median (min–max) of {set_.get('serve_runs')} runs per server, alternating)\n")
        out.append(f"{sv['segments']} segments of the 720p clip, {sv['mean_segment_bytes'] / 1e3:.0f} kB on "
                   f"average, the same bytes from both servers.\n")
        out.append("| server | requests/s | MB/s | p50 latency | p99 latency | non-2xx |")
        out.append("|---|---|---|---|---|---|")
        for name, label in (("hlss", "hlss (segments in memory)"), ("nginx", "nginx (static files, sendfile)")):
            v = sv[name]
            mbs = med(v["rps"]) * sv["mean_segment_bytes"] / 1e6
            out.append(f"| {label} | {s(v['rps'], '', 0)} | {mbs:.0f} | {s(v['p50_ms'], 'ms', 1)} "
                       f"| {s(v['p99_ms'], 'ms', 1)} | {v['errors']} |")
        out.append(f"| hlss / nginx | {x(sv['ratio_rps'])} | | | {x(sv['ratio_p99'])} | |")
        if sv.get("segments_made_during_wrk"):
            out.append(f"\nWarning: hlss made {sv['segments_made_during_wrk']:.0f} segments while wrk ran.")

    if "memory" in r:
        out.append("\n### 5. Memory: hlss's RSS with N 720p streams playing at real-time pace\n")
        out.append("| streams | RSS at start | peak RSS | peak segment bytes held | RSS after idle clean-up "
                   "| bytes held after clean-up | late segments | played for |")
        out.append("|---" * 8 + "|")
        for n, m in r["memory"].items():
            worst = f" (worst {m['worst_lag_s']:.1f} s late)" if m["late_segments"] else ""
            out.append(
                f"| {n} | {m['rss_start_kib'] / 1024:.0f} MiB | {m['peak_rss_kib'] / 1024:.0f} MiB "
                f"| {m['peak_bytes_held'] / 2**20:.1f} MiB | {m['rss_after_idle_kib'] / 1024:.0f} MiB"
                f"{'' if m['closed'] else ' (streams still open)'} | {m['bytes_held_after_idle'] / 2**20:.1f} MiB "
                f"| {m['late_segments']} of {m['segments']}{worst} "
                f"| {m['played_s']:.0f} s |"
            )
        tr = r.get("transcode", {}).get("h264_720p")
        if tr:
            ff = [q["maxrss_kib"] for q in tr["raw"]["ffmpeg"]]
            gs = [q["maxrss_kib"] for q in tr["raw"]["hlssink2"]]
            hl = [q["hwm_kib"] for q in tr["raw"]["hlss"]]
            out.append(
                f"\nFor scale, one full 720p transcode (section 2): ffmpeg peak RSS {max(ff) / 1024:.0f} MiB, "
                f"gst-launch-1.0 + hlssink2 {max(gs) / 1024:.0f} MiB, hlss {max(hl) / 1024:.0f} MiB "
                f"(whole server, every segment of the clip held)."
            )

    if "segmenter" in r:
        sg = r["segmenter"]
        out.append("\n### 6. Segmenter throughput (criterion, `benches/segmenter.rs`)\n")
        if "error" in sg:
            out.append(f"Not measured: {sg['error']} (see {sg.get('log')}).")
        else:
            out.append(f"A {sg.get('stream_mb') or 0:.0f} MB 720p TS stream in memory. Criterion's "
                       f"estimate, and the bench's own best-of-5 summary with memcpy measured beside it.\n")
            out.append("| what | criterion (MB/s) | best of 5 (MB/s) | of memcpy |")
            out.append("|---|---|---|---|")
            crit = sg.get("criterion", {})
            for name, cname in (("memcpy", "memcpy"), ("segment, 64 KiB pushes", "segment (64 KiB pushes)"),
                                ("segment, 188-byte pushes", "segment (188-byte pushes)")):
                sm = sg.get("summary", {}).get(name, {})
                c = crit.get(cname)
                out.append(f"| {name} | {'n/a' if c is None else f'{c:.0f}'} | {sm.get('mb_s', float('nan')):.0f} "
                           f"| {sm.get('of_memcpy', float('nan')):.0%} |")
            if sg.get("goal"):
                out.append(f"\nThe bench's own goal: {sg['goal']}.")

    if "direct" in r:
        out += direct_table(r["direct"])
    if "tier" in r:
        out += tier_table(r["tier"])
    return "\n".join(out)


def tier_table(t: dict) -> list[str]:
    """Section 8: the nginx cache tier (deploy/nginx/hlss-cache.conf) vs straight vs round robin."""
    out = ["\n### 8. More than one machine: the cache tier (issue 16)\n",
           f"{t['viewers']} viewers start together and each fetches one whole file (master, variant, every "
           "segment, as fast as they come), three ways, each with fresh origins and an empty cache, "
           f"interleaved {t['runs']} times: **straight** to one origin (the baseline); the **tier**: nginx "
           "running `deploy/nginx/hlss-cache.conf` (addresses filled in) before two origins; **round robin**: "
           "nginx before the same two origins with no hashing and no cache. Origin CPU = utime + stime of "
           "every origin over the run, per viewer; medians.\n",
           "| file | set-up | origin CPU s per viewer | vs straight | requests reaching an origin | nginx CPU s "
           "| wall | errors |",
           "|---" * 8 + "|"]
    names = {"straight": "straight", "tier": "tier (shipped config)", "round_robin": "round robin"}
    for kind, f in t["files"].items():
        for setup, label in names.items():
            row = f[setup]
            out.append(f"| {kind} | {label} | {row['origin_cpu_per_viewer']:.3f} | {x(row['cpu_ratio'])} "
                       f"| {row['origin_requests']:.0f} | {row['nginx_cpu']:.2f} | {row['wall']:.1f} s "
                       f"| {row['errors']} |")
    return out


def render(r: dict) -> str:
    f = r["facts"]
    st = r.get("settings", {})
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(st.get("env", {}).items()))
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); every baseline was measured in the same run, "
        "interleaved with hlss. Medians with (min–max); ratios are hlss / baseline.",
        "",
        f"- date: {f['date']}; run took {f.get('duration_s', 0) / 60:.0f} min",
        f"- command: `{(env + ' ') if env else ''}make bench`",
        f"- machine: `nproc` = {f['nproc']}, {f['cpu']}, {f['memory']}, {f['os']}, Linux {f['kernel']}; "
        f"load average at start {f['load_start'][0]:.1f}, at end {f.get('load_end', [float('nan')])[0]:.1f} "
        "(the machine is shared: other jobs ran during the run)",
        f"- {f['hlss']}, {f['rustc']}",
        f"- {f['ffmpeg']}; {f['gstreamer']}; {f['libx264']}; nginx {f['nginx']}; {f['wrk']}; Python {f['python']}",
        f"- encoder settings, every tool: x264 `{st.get('preset')}`, `tune=zerolatency`, "
        f"{st.get('video_kbps')} kb/s, a keyframe every {st.get('segment'):g} s and no scene-cut keyframes, "
        f"{st.get('segment'):g} s segments; AAC {st.get('audio_kbps')} kb/s stereo 48 kHz (libav's encoder); "
        "720p sources stay 720p, the 1080p source is encoded at 1080p (hlss `--max-height 1080`)",
        "- sources (made by `bench/media.py` with ffmpeg's `testsrc2` and a tone; x264 `fast` CRF 20, "
        "default 250-frame GOP): " + "; ".join(
            f"{m['label']} {m['size']} {m['seconds']:.0f} s" for m in r.get("media", {}).values()),
        "",
        table(r),
        "",
        "## Commands",
        "",
        "hlss (one fresh process per cold measurement, ready before the clock starts): "
        "`target/release/hlss --listen 127.0.0.1:0 --preset P --segment-duration 2 --video-bitrate 3000 "
        "--max-height 720|1080 [--playlist event] FILE`; the transcode-speed runs add `--read-ahead 1000` and "
        "pull every segment in order as soon as the previous one arrived.",
        "",
    ]
    cmds = {}
    for res in r.get("startup", {}).values():
        cmds.update(res.get("cmds", {}))
        break
    for res in r.get("transcode", {}).values():
        for k, v in res.get("cmds", {}).items():
            cmds.setdefault(k, v)
        break
    out.append("Baselines, 720p source (for the other sources only the file names change: every source is "
               "encoded at its own size); the full transcodes run the same commands to the end, the seek "
               "reference adds `-ss`:")
    out.append("")
    root = str(Path(__file__).resolve().parent.parent) + "/"
    for name, cmd in cmds.items():
        out.append(f"- {name}:\n  `{shlex.join(cmd).replace('file://' + root, 'file://').replace(root, '')}`")
    if NOTES.exists():
        out += ["", NOTES.read_text().strip()]
    return "\n".join(out) + "\n"
