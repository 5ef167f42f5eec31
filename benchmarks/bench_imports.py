"""Imports: the fast path against django-import-export, and one file of a million rows.

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench_imports make bench BENCH_ARGS=imports
    … BENCH_ARGS="imports --rows=100000 --sample=10000 --million=1000000"

Files: phones in mixed writing (+49 176 …, 0176-…, 0049 (176) …), a first
name and three tags from the demo vocabulary; 10% of the rows are contacts of
the benchmark base (updates), the rest new. Everything the benchmark creates
is deleted again at the end (by the numbers it wrote), so the 1M-contact base
is left as it was.
"""

from __future__ import annotations

import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TITLE = "Imports: fast path vs django-import-export; 1,000,000 rows in one file"
NEW_PREFIX = "+49176"  # the benchmark base uses +49151…: no clash
TAGS = ["Interesse-Make-up", "Interesse-Sport", "Interesse-Essen", "Interesse-Reisen",
        "Hohe Aktivität", "Beobachtung notwendig", "VIP", "Geburtstag bald",
        "Produktkategorie-Lippenstift", "Interesse Produkt A"]


def _arg(argv: list[str], name: str, default: int) -> int:
    for a in argv:
        if a.startswith(f"--{name}="):
            return int(a.split("=", 1)[1])
    return default


def _writing(digits: str, i: int) -> str:
    """The same number in one of five common writings."""
    national = digits[2:]  # after 49
    return [f"+49 {national[:3]} {national[3:]}", f"0{national[:3]}-{national[3:]}",
            f"0049 ({national[:3]}) {national[3:]}", f"+49{national}",
            f"0{national[:3]}.{national[3:7]}.{national[7:]}"][i % 5]


def write_file(path: Path, rows: int, *, offset: int, existing: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "first_name", "tags"])
        for i in range(rows):
            if existing and i % 10 == 0:
                digits = f"49151{(i // 10) % existing + 2:08d}"  # a contact of the base
            else:
                digits = f"49176{9_0000000 + offset + i:08d}"
            writer.writerow([_writing(digits, i), f"Name{i % 997}",
                             ", ".join(rng.sample(TAGS, 3))])


def _cleanup() -> None:
    from django.db import connection

    from tagging.imports.models import ImportJob

    with connection.cursor() as cursor:
        cursor.execute("""
            DELETE FROM tagging_tagassignment a USING crm_contact c
             WHERE a.contact_id = c.id AND c.phone LIKE %s""", [NEW_PREFIX + "%"])
        cursor.execute("DELETE FROM crm_contact WHERE phone LIKE %s", [NEW_PREFIX + "%"])
        # Tags the benchmark added to contacts of the base, and their history.
        cursor.execute("""
            DELETE FROM tagging_tagassignment a USING tagging_assignmenthistory h
             WHERE h.source_ref LIKE 'import:%%' AND h.action = 'added'
               AND a.contact_id = h.contact_id AND a.tag_id = h.tag_id""")
        cursor.execute("DELETE FROM tagging_tagassignment WHERE source_ref = 'bench-baseline'")
        cursor.execute("DELETE FROM tagging_assignmenthistory WHERE source_ref LIKE 'import:%%'")
    for job in ImportJob.objects.filter(original_name__in=["rows.csv", "sample.csv",
                                                            "million.csv"]):
        job.file.delete(save=False)  # the uploaded copy under MEDIA_ROOT
        if job.failed_rows:
            job.failed_rows.delete(save=False)
        job.delete()


def fast_path(path: Path) -> tuple[float, dict]:
    from tagging.imports.models import ConsentBasis
    from tagging.imports.services import import_create, import_run

    started, cpu = time.perf_counter(), time.process_time()
    # Consent "unknown" leaves the base's consent as it is.
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN, region="DE")
    import_run(job=job)
    job.refresh_from_db()
    return time.perf_counter() - started, {**job.report, "cpu": time.process_time() - cpu}


def baseline(path: Path) -> tuple[float, int]:
    import tablib
    from django.db.models.signals import pre_save

    from benchmarks.import_export_baseline import ContactResource
    from tagging.models import TagAssignment

    def mark(sender, instance, **kwargs):
        instance.source_ref = "bench-baseline"  # so that cleanup finds these rows

    dataset = tablib.Dataset().load(path.read_text(encoding="utf-8"), format="csv")
    pre_save.connect(mark, sender=TagAssignment)
    started = time.perf_counter()
    try:
        result = ContactResource().import_data(dataset, dry_run=False, raise_errors=False)
    finally:
        pre_save.disconnect(mark, sender=TagAssignment)
    return time.perf_counter() - started, result.totals.get("new", 0)


def million(path: Path, rows: int) -> dict:
    """Run the import task's body in its own process; sample progress from the database."""
    from tagging.imports.models import ConsentBasis, ImportJob
    from tagging.imports.services import import_create

    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN, region="DE")
    code = ("import django, sys; django.setup(); "
            "from tagging.imports.tasks import import_run_task; "
            f"import_run_task({job.pk}); import resource; "
            "u = resource.getrusage(resource.RUSAGE_SELF); print(u.ru_utime + u.ru_stime); "
            "print(u.ru_maxrss)")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            env={**os.environ, "LOG_LEVEL": "WARNING"}, text=True)
    samples = []
    while proc.poll() is None:
        time.sleep(2)
        current = ImportJob.objects.filter(pk=job.pk).values("rows", "progress", "status")[0]
        samples.append((round(time.perf_counter() - started), current["rows"],
                        round(100 * current["progress"])))
    out = proc.stdout.read().strip().splitlines()
    elapsed = time.perf_counter() - started
    job.refresh_from_db()
    return {"seconds": elapsed, "rss_mb": int(out[-1]) / 1024 if out else 0.0, "job": job,
            "cpu": float(out[-2]) if len(out) > 1 else 0.0,
            "samples": samples, "returncode": proc.returncode}


def run(argv: list[str]) -> str:
    from django.core.management import call_command
    from django.db import connection

    from benchmarks.dataset import settle
    from tagging.vocabulary import STARTER_VOCABULARY, vocabulary_ensure

    call_command("migrate", verbosity=0)
    vocabulary_ensure(STARTER_VOCABULARY)
    n = _arg(argv, "rows", 100_000)
    sample = _arg(argv, "sample", 10_000)
    big = _arg(argv, "million", 1_000_000)
    existing = min(100_000, _count_contacts())
    tmp = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    lines = [f"PostgreSQL {connection.pg_version // 10000}, {_count_contacts():,} contacts in "
             "the base. Rows: phone in five writings, first name, three tags; every tenth row "
             "an existing contact.", ""]
    try:
        _cleanup()
        main = tmp / "rows.csv"
        write_file(main, n, offset=0, existing=existing)
        settle()  # earlier runs' deleted rows vacuumed, as autovacuum would
        fast_s, report = fast_path(main)
        rerun_s, rerun = fast_path(main)
        _cleanup()
        small = tmp / "sample.csv"
        # New numbers only: the baseline's tag widget replaces a contact's whole tag set.
        write_file(small, sample, offset=0, existing=0)
        base_s, _created = baseline(small)
        _cleanup()
        scaled = base_s * n / sample
        lines += [
            "| path | rows | time | rows/s |", "|---|---:|---:|---:|",
            f"| fast path (`import_run`: normalise, dedupe, bulk SQL, one tag statement per "
            f"batch, history, report) | {n:,} | {fast_s:.1f} s | {n / fast_s:,.0f} |",
            f"| same file again (all unchanged) | {n:,} | {rerun_s:.1f} s | "
            f"{n / rerun_s:,.0f} |",
            f"| django-import-export `ModelResource` + `ManyToManyWidget` | {sample:,} "
            f"(measured) | {base_s:.1f} s | {sample / base_s:,.0f} |",
            f"| django-import-export, scaled to {n:,} | {n:,} | {scaled:.0f} s | "
            f"{n / scaled:,.0f} |", "",
            f"**Fast path is {scaled / fast_s:.0f}× faster** than the django-import-export "
            f"baseline (goal ≥ 20×) at **{n / fast_s:,.0f} rows/s** end to end (goal ≥ 10,000).",
            f"Report: {report['created']:,} created, {report['updated']:,} updated, "
            f"{report['unchanged']:,} unchanged, {report['failed']:,} failed, "
            f"{report['tags_added']:,} tags added. Re-run: {rerun['created']} created, "
            f"{rerun['updated']} updated, {rerun['unchanged']:,} unchanged.",
            f"The import process itself used {report['cpu']:.1f} s of CPU for the {n:,} rows "
            f"({n / report['cpu']:,.0f} rows per CPU-second); the rest of the wall time is "
            f"PostgreSQL and waiting for a core. Load average during the run: "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores shared with other engineers.",
        ]
        if big:
            huge = tmp / "million.csv"
            write_file(huge, big, offset=0, existing=0)
            size_mb = huge.stat().st_size / 1e6
            result = million(huge, big)
            job = result["job"]
            _cleanup()
            shown = result["samples"][:: max(1, len(result["samples"]) // 8)]
            lines += [
                "", f"**{big:,} rows in one file** ({size_mb:.0f} MB CSV): status "
                f"`{job.status}`, {job.rows:,} rows read, {job.created:,} created, "
                f"{job.tags_added:,} tags added in {result['seconds']:.0f} s "
                f"({job.rows / result['seconds']:,.0f} rows/s); peak RSS of the worker "
                f"process {result['rss_mb']:.0f} MB (limit 500 MB); it used "
                f"{result['cpu']:.0f} s of CPU ({job.rows / max(result['cpu'], 1):,.0f} rows per "
                f"CPU-second).",
                "Progress as the admin's progress bar saw it (seconds: rows committed, %): "
                + ", ".join(f"{s}s: {r:,} ({p}%)" for s, r, p in shown) + ".",
            ]
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    return f"## {TITLE}\n\n" + "\n".join(lines)


def _count_contacts() -> int:
    from crm.models import Contact

    return Contact.objects.count()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
