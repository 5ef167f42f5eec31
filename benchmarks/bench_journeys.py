"""Journey throughput, side by side: another checkout (``--before``) and this one, same run.

    make bench BENCH_ARGS="journeys --before-ref=10808e9"
    # --size=20000 (default) due enrollments; --before=DIR (a checkout to compare with)
    # or --before-ref=REV (exported with ``git archive`` into a temporary directory);
    # BENCH_JOURNEYS_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/
    # tagwerk_bench_journeys) is dropped and created again for every PostgreSQL run.

The load: ``--size`` consented contacts, all due at the first step of one journey whose
steps are "send a template" (marketing, the triggered-campaign path with its consent,
blocklist, suppression and frequency-cap checks) and "wait 3 days". One process runs
``journeys_advance`` until nothing is due, as one worker does; the send loop itself is
not included (queueing the send task is a no-op). Each measurement is a fresh database
(SQLite file, PostgreSQL database) migrated by the checkout measured, in a process of
its own started from that checkout; the queries are counted there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TITLE = "Journeys: due enrollments advanced per second, before and after batching"

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_JOURNEYS_DATABASE_URL",
                    "postgres://postgres@127.0.0.1:5432/tagwerk_bench_journeys")

# Runs inside the checkout measured (its cwd comes first on sys.path).
_MEASURE = r"""
import json, os, sys, time
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
call_command("migrate", verbosity=0)
import crm.jobs
crm.jobs._publish = lambda *args, **kwargs: None  # the send loop is not measured
from campaigns.journeys.models import Enrollment, EnrollmentStep, Journey, JourneyStep
from campaigns.journeys.services import journeys_advance
from campaigns.models import Send
from campaigns.services import template_create
from crm.models import Contact
size = int(sys.argv[1])
Contact.objects.bulk_create([Contact(phone=f"+4915{i:09d}", first_name="Mia", country="DE",
                                     consent_status="opted_in") for i in range(size)],
                            batch_size=5000)
template = template_create(name="willkommen", language="de", body="Hallo {{1}}!",
                           variables=[{"source": "first_name"}])
now = timezone.now()
journey = Journey.objects.create(name="Willkommen", trigger="joined", active=True,
                                 active_since=now)
JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
JourneyStep.objects.create(journey=journey, position=2, kind="wait", wait_days=3)
Enrollment.objects.bulk_create([Enrollment(journey=journey, contact_id=pk, due_at=now)
                                for pk in Contact.objects.values_list("pk", flat=True)],
                               batch_size=5000)
queries = [0]
def count(execute, sql, params, many, context):
    queries[0] += 1
    return execute(sql, params, many, context)
started = time.perf_counter()
with connection.execute_wrapper(count):
    while journeys_advance(now=now).runs:
        pass
took = time.perf_counter() - started
print(json.dumps({"seconds": took, "queries": queries[0],
                  "sends": Send.objects.count(), "logged": EnrollmentStep.objects.count(),
                  "waiting": Enrollment.objects.filter(position=3, status="active").count()}))
"""


def _pg_fresh(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _measure(root: Path, database: str, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-journeys-") as var:
        if database == "PostgreSQL":
            _pg_fresh(PG)
            url = PG
        else:
            url = f"sqlite:///{var}/bench.sqlite3"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base",
               "DATABASE_URL": url, "TAGWERK_VAR_DIR": var, "SECRET_KEY": "bench-journeys",
               "LOG_LEVEL": "WARNING", "CELERY_BROKER_URL": "memory://"}
        load = os.getloadavg()[0]
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(size)], cwd=root, env=env,
                             capture_output=True, text=True, timeout=3600)
        if out.returncode:
            raise RuntimeError(f"{root} on {database}: {out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "load": (load, os.getloadavg()[0])}


def _export(rev: str, into: str) -> Path:
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return Path(into)


def run(argv: list[str]) -> str:
    def option(name: str, default: str) -> str:
        return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)

    size = int(option("size", "20000"))
    before, ref = option("before", ""), option("before-ref", "")
    with tempfile.TemporaryDirectory(prefix="bench-journeys-before-") as tmp:
        checkouts = []
        if ref:
            checkouts.append((f"before ({ref})", _export(ref, tmp)))
        elif before:
            checkouts.append(("before", Path(before)))
        checkouts.append(("this checkout", ROOT))
        rows, rates = [], {}
        for database in ("SQLite", "PostgreSQL"):
            for label, root in checkouts:
                r = _measure(root, database, size)
                ok = r["sends"] == size and r["logged"] == 2 * size and r["waiting"] == size
                rates[label, database] = size / r["seconds"]
                rows.append(
                    f"| {label} | {database} | {size:,} | {r['seconds']:.1f} s | "
                    f"**{size / r['seconds']:,.0f}** | {r['queries'] / size:.2f} | "
                    f"{'yes' if ok else 'NO'} | {r['load'][0]:.1f} → {r['load'][1]:.1f} |")
                print(rows[-1], flush=True)
    ratios = []
    for database in ("SQLite", "PostgreSQL"):
        if len(checkouts) == 2:
            old, new = rates[checkouts[0][0], database], rates["this checkout", database]
            ratios.append(f"{database} {new / old:.1f}×")
    return "\n".join([
        f"## {TITLE}", "",
        f"Load: {size:,} consented contacts due at the first step of one journey — send a "
        "marketing template through its triggered campaign (consent, opt-out, blocklist, "
        "suppression, frequency caps, one send per contact), then wait 3 days. One process "
        "runs `journeys_advance` until nothing is due, as one worker does; the send loop "
        "itself is not included. Every run on a fresh database migrated by the checkout "
        "measured; 2 cores shared with other sessions (1-minute load average before → after "
        "each run in the last column).", "",
        "| checkout | database | enrollments | time | enrollments/s | queries per "
        "enrollment | every send, log row and wait | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
        *rows, "",
        *([f"After / before: {', '.join(ratios)}."] if ratios else []),
    ])


if __name__ == "__main__":
    print(run(sys.argv[1:]))
