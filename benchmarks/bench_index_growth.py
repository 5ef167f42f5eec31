"""How the audience index grows: 1,000,000 and 5,000,000 contacts side by side (issue #19).

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench_ix \\
    BENCH_GROWTH_DATABASE_URL=postgres://…/tagwerk_bench_5m make bench BENCH_ARGS=index_growth

The first database holds the 1M benchmark dataset (a copy: the index stores its snapshot
there); the second is built with 5,000,000 contacts by ``benchmarks.dataset`` if it is not
there yet (about 20 minutes and 18 GB). For each: a fresh process with no stored snapshot
(full build, then it stores one), two fresh processes starting from the snapshot (seconds
from process start to the first exact count, memory), and one warm process timing the
twelve expressions of bench_audiences 20 times each (p50/p95 of exact counts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from benchmarks.bench_index import ROOT, _spawn

TITLE = "Audience index growth: 1,000,000 and 5,000,000 contacts"
GROWTH_URL = os.environ.get("BENCH_GROWTH_DATABASE_URL",
                            "postgres://postgres@127.0.0.1:5432/tagwerk_bench_5m")


def _ensure(url: str, contacts: int) -> dict:
    """The dataset of ``contacts`` at ``url`` (built if missing); its sizes."""
    code = ("import json, benchmarks.run as r; r.setup_django(); "
            "from benchmarks.dataset import ensure_dataset, settle; "
            f"s = ensure_dataset({contacts}, log=lambda m: None); settle(); print(json.dumps(s))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, text=True,
                         capture_output=True, env={**os.environ, "BENCH_DATABASE_URL": url})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _measure(url: str, contacts: int) -> dict:
    sizes = _ensure(url, contacts)
    build = _spawn("--child", "after_build", database_url=url)
    starts = [_spawn("--child", "after", database_url=url) for _ in range(2)]
    counts = _spawn("--child-counts", database_url=url)
    return {"sizes": sizes, "build": build, "start": min(starts, key=lambda r: r["total_s"]),
            "counts": counts}


def run(argv: list[str]) -> str:
    from django.db import connection

    small_url = os.environ.get("BENCH_DATABASE_URL", "")
    if connection.settings_dict["NAME"] == "tagwerk_bench":
        raise SystemExit("This benchmark stores the index snapshot: run it on a copy, e.g. "
                         "BENCH_DATABASE_URL=…/tagwerk_bench_ix.")
    connection.close()
    load = [os.getloadavg()[0]]
    results = [_measure(small_url, 1_000_000), _measure(GROWTH_URL, 5_000_000)]
    load.append(os.getloadavg()[0])
    rows = []
    for r in results:
        s, b, st, c = r["sizes"], r["build"], r["start"], r["counts"]
        rows.append(
            f"| {s['contacts']:,} | {s['assignments']:,} | {b['total_s']:.1f} "
            f"| {b['save_s']:.1f} | {st['total_s']:.2f} ({st['setup_s']:.2f} + "
            f"{st['index_s']:.2f}) | {st['rss_before_mb']:.0f} → {st['rss_after_mb']:.0f} "
            f"(+{st['rss_after_mb'] - st['rss_before_mb']:.0f}) | {st['hwm_mb']:.0f} "
            f"| {c['p50_ms']:.1f} / {c['p95_ms']:.1f} / {c['max_ms']:.1f} |")
    return "\n".join([
        f"## {TITLE}", "",
        "Each size: a fresh process with no stored snapshot builds the index from the tables "
        "and stores a snapshot; fresh processes then start from it (the faster of two is "
        "shown: seconds from process start to the first exact count of "
        "`\"VIP\" AND NOT last_interaction within 180d`, Django setup + index); a warm "
        "process times the twelve expressions of the audiences benchmark 20 times each "
        "(240 exact counts). Goal at 5M (issue #19): p95 ≤ 30 ms.", "",
        "| contacts | assignments | full build (s) | storing the snapshot (s) | start from the "
        "snapshot to first count (s) | VmRSS (MB, +index) | VmHWM peak (MB) | count p50 / p95 "
        "/ max (ms) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        f"_1-minute load average {load[0]:.1f} at the start, {load[1]:.1f} at the end "
        "(2 cores)._"])
