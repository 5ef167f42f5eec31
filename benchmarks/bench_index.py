"""The audience index at start-up, in memory, and after a bulk change (issue #19).

Before and after side by side in one run, each start in a fresh process:

- **before**: the index as it was (``tagging/audiences/index.py`` at ``BASE``, loaded from
  git as a module of its own): a full build in one statement, tags then fields, and the
  catch-up that re-reads each touched pair;
- **after**: the current index: a process starts from the stored snapshot
  (``audiences_indexsnapshot``) and catches up; the full build (no usable snapshot) is
  measured too.

Per start: seconds from process start to the first exact count (``django.setup`` included
and shown apart), VmRSS before the index and after it holds tags and fields, VmHWM (peak).
Then one process holds both indexes, runs “Manage tags” on ~100,000 contacts, and times the
first count after it on each (and again after the undo).

The bulk change and the stored snapshot write to the database: run it on a copy of the
benchmark dataset, never on the shared ``tagwerk_bench``:

    createdb -T tagwerk_bench tagwerk_bench_ix   # or ensure_dataset into an empty one
    BENCH_DATABASE_URL=postgres://…/tagwerk_bench_ix make bench BENCH_ARGS=index
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.monotonic()  # as near to process start as this module gets

TITLE = "Audience index: start-up, memory, first count after a bulk change (1M contacts)"
BASE = "10808e9e05a5b14f7ec86bc84856b591c5b2f62c"  # the index before issue #19
ROOT = Path(__file__).resolve().parent.parent
EXPR = '"VIP" AND NOT last_interaction within 180d'  # tags and a field: the whole index
BULK = '"Interesse-Make-up" AND "Kaufphase-Abgeschlossen"'


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _old_index():
    """The index module as it was at ``BASE`` (its own module object and process state)."""
    source = subprocess.run(["git", "show", f"{BASE}:tagging/audiences/index.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.gettempdir()) / f"tagwerk_index_{BASE[:8]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tagwerk_index_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _count(index_module, expr: str) -> int:
    """One exact count on ``index_module``'s index (fields included)."""
    from django.utils import timezone

    from tagging.audiences import evaluation
    from tagging.audiences.language import parse

    node = parse(expr)
    loaded = index_module.current(evaluation.columns(node))
    return len(evaluation.bitmap(node, loaded, {}, timezone.now()))


def child(mode: str) -> dict:
    """One fresh process: start the index as ``mode`` says and count once."""
    from benchmarks.run import setup_django

    setup_django()
    import numpy  # noqa: F401 - imported by every process that serves counts anyway
    from django.urls import resolve

    from tagging.audiences import (
        index,
        selectors,  # noqa: F401
    )

    resolve("/admin/")  # the admin and every app loaded, as in a web process
    index.SAVE_EVERY = None  # stored below, in the open, not by the background thread
    ready = time.monotonic()
    rss_before = _status("VmRSS")
    module = _old_index() if mode == "before" else index
    if mode == "after_build":
        from tagging.audiences import snapshot

        with snapshot.connect() as conn:  # no usable snapshot: the fallback path
            conn.execute("DELETE FROM audiences_indexsnapshot")
            conn.commit()
    started = time.monotonic()
    count = _count(module, EXPR)
    counted = time.monotonic()
    result = {"mode": mode, "count": count, "setup_s": ready - STARTED,
              "index_s": counted - started, "total_s": counted - STARTED,
              "rss_before_mb": rss_before, "rss_after_mb": _status("VmRSS"),
              "hwm_mb": _status("VmHWM")}
    if mode == "after_build":
        started = time.monotonic()
        result["saved"] = index.snapshot_save(force=True)
        result["save_s"] = time.monotonic() - started
    return result


def child_bulk() -> dict:
    """Both indexes warm in one process; a bulk change; the first count after it on each."""
    from benchmarks.run import setup_django

    setup_django()
    from django.db import connection

    from tagging.audiences import index
    from tagging.audiences.selectors import ids_matching
    from tagging.audiences.services import bulk_operation_start, bulk_operation_undo, bulk_preview
    from tagging.models import AssignmentHistory, Tag

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
    index.SAVE_EVERY = None
    old = _old_index()
    _count(old, EXPR)
    _count(index, EXPR)
    add = [Tag.objects.select_related("dimension").get(
        name="Hohes Potenzial - Nachverfolgung erforderlich")]
    remove = [Tag.objects.select_related("dimension").get(name="Inaktiver Kunde")]
    contacts = ids_matching(BULK)
    preview = bulk_preview(contacts=contacts, add=add, remove=remove)
    bulk = bulk_operation_start(contacts=contacts, add=add, remove=remove, preview=preview,
                                selection=BULK, background=False)
    result = {"contacts": bulk.total, "added": bulk.added, "removed": bulk.removed}

    def first_counts(label: str, order) -> None:
        expr = f'"{add[0].name}" OR "{remove[0].name}"'
        for name, module in order:  # the second reads a warmer cache: each goes first once
            started = time.monotonic()
            result[f"{label}_{name}_count"] = _count(module, expr)
            result[f"{label}_{name}_s"] = time.monotonic() - started
        result[f"{label}_same"] = result[f"{label}_before_count"] == result[f"{label}_after_count"]

    first_counts("change", (("before", old), ("after", index)))
    bulk_operation_undo(bulk=bulk)
    first_counts("undo", (("after", index), ("before", old)))
    AssignmentHistory.objects.filter(  # the history as the dataset built it
        operation__in=[bulk.operation, __import__("uuid").uuid5(bulk.operation, "undo")]).delete()
    return result


def child_counts(runs: int = 20) -> dict:
    """A warm process: p50/p95 of exact counts of the twelve expressions of bench_audiences."""
    from benchmarks.run import setup_django

    setup_django()
    from django.utils import timezone

    from benchmarks.bench_audiences import EXPRESSIONS
    from tagging.audiences import index
    from tagging.audiences.selectors import count_matching

    index.SAVE_EVERY = None
    count_matching(EXPR)  # start the index (tags and fields)
    now, samples = timezone.now(), []
    for _ in range(runs):
        for expr in EXPRESSIONS:
            started = time.perf_counter()
            count_matching(expr, now=now)
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50_ms": samples[len(samples) // 2], "p95_ms": samples[int(len(samples) * .95)],
            "max_ms": samples[-1], "counts": len(samples), "rss_mb": _status("VmRSS")}


def _spawn(*args: str, database_url: str = "") -> dict:
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    if database_url:
        env["BENCH_DATABASE_URL"] = database_url
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_index", *args], cwd=ROOT,
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(argv: list[str]) -> str:
    from django.db import connection

    from benchmarks.dataset import ensure_dataset, settle

    if connection.settings_dict["NAME"] == "tagwerk_bench":
        raise SystemExit("This benchmark writes (a bulk change, the stored snapshot): run it on "
                         "a copy, e.g. BENCH_DATABASE_URL=…/tagwerk_bench_ix.")
    load_before = os.getloadavg()
    sizes = ensure_dataset()
    settle()
    connection.close()
    runs = [_spawn("--child", "after_build")]  # also stores the snapshot the next ones load
    for _ in range(2):  # interleaved, so load from other work hits both alike
        runs += [_spawn("--child", "before"), _spawn("--child", "after")]
    bulk = _spawn("--child-bulk")

    def row(label: str, r: dict) -> str:
        return (f"| {label} | {r['total_s']:.2f} | {r['setup_s']:.2f} | {r['index_s']:.2f} | "
                f"{r['rss_before_mb']:.0f} | {r['rss_after_mb']:.0f} "
                f"(+{r['rss_after_mb'] - r['rss_before_mb']:.0f}) | {r['hwm_mb']:.0f} |")

    labels = {"before": "before: full build (tags, then fields)",
              "after": "after: stored snapshot + catch-up",
              "after_build": "after, no usable snapshot: full build"}
    counts = {r["count"] for r in runs}
    lines = [
        f"Dataset: {sizes['contacts']:,} contacts, {sizes['assignments']:,} assignments "
        f"(a copy of the benchmark dataset: this benchmark writes). Each row is a fresh process "
        f"counting `{EXPR}` (tags and a field, so the whole index is loaded); all counts "
        f"agree: {'yes' if len(counts) == 1 else counts}.",
        "",
        "| process start | to first exact count (s) | of which Django setup (s) | "
        "of which the index (s) | VmRSS before the index (MB) | VmRSS after (MB, +index) | "
        "VmHWM peak (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *(row(labels[r["mode"]], r) for r in runs),
        "",
        f"Storing the snapshot (after the full build): {runs[0]['save_s']:.2f} s.",
        "",
        f"Bulk “Manage tags” on `{BULK}`: {bulk['contacts']:,} contacts "
        f"(+{bulk['added']:,}, −{bulk['removed']:,}). First count after it, both indexes warm in "
        f"one process and caught up on the same changes: before "
        f"{bulk['change_before_s'] * 1000:.0f} ms, after {bulk['change_after_s'] * 1000:.0f} ms "
        f"(same count: {bulk['change_same']}); after the undo: before "
        f"{bulk['undo_before_s'] * 1000:.0f} ms, after {bulk['undo_after_s'] * 1000:.0f} ms "
        f"(same count: {bulk['undo_same']}).",
        "",
        f"_Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average (1, 5, 15 "
        f"min) {', '.join(f'{x:.1f}' for x in load_before)} at the start, "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end "
        "(2 cores)._",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
    elif sys.argv[1:2] == ["--child-bulk"]:
        print(json.dumps(child_bulk()))
    elif sys.argv[1:2] == ["--child-counts"]:
        print(json.dumps(child_counts()))
