"""Audiences at 1,000,000 contacts / ~10,000,000 assignments (PostgreSQL).

1. Counting the brief's twelve expressions: p50/p95 of the fast path (per-tag
   bitmaps in the process, fields in SQL; the default), of the plain EXISTS reference, and of the
   straightforward ORM chain (``.filter(tags=a).filter(tags=b).exclude(tags=c)
   .distinct().count()``) side by side.
2. Bulk “Manage tags” on ~100,000 matching contacts, end to end: preview
   counts, materialising the selection, tags_change with history, the
   BulkOperation record. Undone afterwards so the dataset stays as built.
3. The contacts changelist with an expression filter (Django test client,
   full admin stack), p50/p95 per page.

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench_audiences make bench BENCH_ARGS=audiences
    (options: --runs N, --baseline-runs N, --skip-bulk, --skip-page)
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

TITLE = "Audiences: segment counts, bulk Manage tags, changelist at 1M contacts"

EXPRESSIONS = [
    '"Interesse-Make-up" AND "Kaufphase-Abgeschlossen" AND NOT "Produktkategorie-Lippenstift"',
    '("VIP" OR "SVIP") AND NOT ("Drohender Abwanderer" OR "Historischer Bestand")',
    '"Kaufkraft/*"',
    'NOT "Kaufkraft/*"',
    "purchases > 3",
    "purchases = 1 AND NOT first_purchase within 90d",
    'last_interaction within 30d AND NOT "Bestellt"',
    '"VIP" AND NOT last_interaction within 180d',
    "last_read within 14d",
    'age >= 25 AND age <= 34 AND gender = "f"',
    'country = "DE" OR language = "zh"',
    'consent = "opted_in"',
]


def _baseline(index: int, now):
    """The straightforward ORM chain a developer would write for each expression."""
    from django.db.models import Q

    from crm.models import Contact
    from tagging.models import Dimension, Tag

    def tag(name):
        return Tag.objects.get(name=name)

    c = Contact.objects
    today = now.date()
    chains = [
        lambda: c.filter(tags=tag("Interesse-Make-up")).filter(tags=tag("Kaufphase-Abgeschlossen"))
        .exclude(tags=tag("Produktkategorie-Lippenstift")).distinct(),
        lambda: c.filter(Q(tags=tag("VIP")) | Q(tags=tag("SVIP")))
        .exclude(tags=tag("Drohender Abwanderer")).exclude(tags=tag("Historischer Bestand"))
        .distinct(),
        lambda: c.filter(tags__dimension=Dimension.objects.get(name="Kaufkraft")).distinct(),
        lambda: c.exclude(tags__dimension=Dimension.objects.get(name="Kaufkraft")).distinct(),
        lambda: c.filter(purchase_count__gt=3),
        lambda: c.filter(purchase_count=1).exclude(first_purchase_at__gte=now - timedelta(90)),
        lambda: c.filter(last_interaction_at__gte=now - timedelta(30))
        .exclude(tags=tag("Bestellt")).distinct(),
        lambda: c.filter(tags=tag("VIP")).exclude(last_interaction_at__gte=now - timedelta(180))
        .distinct(),
        lambda: c.filter(last_read_at__gte=now - timedelta(14)),
        lambda: c.filter(birth_date__lte=today.replace(year=today.year - 25),
                         birth_date__gt=today.replace(year=today.year - 35), gender="f"),
        lambda: c.filter(Q(country="DE") | Q(language="zh")),
        lambda: c.filter(consent_status="opted_in"),
    ]
    return chains[index]()


def _time(fn, runs: int) -> tuple[list[float], object]:
    samples, value = [], None
    for _ in range(runs):
        started = time.perf_counter()
        value = fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, value


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _opt(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def bench_counts(runs: int, baseline_runs: int) -> list[str]:
    from django.db import connection
    from django.utils import timezone

    from tagging.audiences import index as bitmaps
    from tagging.audiences.selectors import count_matching

    now = timezone.now()  # one “now” for all three, so “within 30d” means the same
    started = time.perf_counter()
    bitmaps.current()
    built = time.perf_counter() - started
    started = time.perf_counter()
    bitmaps.current(["purchase_count"])  # the first field loads all held fields
    built_fields = time.perf_counter() - started

    lines = [
        "| expression | matches | fast p50 / p95 (ms) | EXISTS p50 / p95 (ms) | "
        "ORM chain p50 / p95 (ms) | fast vs chain (p50) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '60s'")
    for i, expr in enumerate(EXPRESSIONS):
        # Interleaved, so that load from other work on the machine hits all three alike.
        fast, exists, chain = [], [], []
        for r in range(runs):
            samples, n = _time(lambda e=expr: count_matching(e, now=now), 1)
            fast += samples
            samples, n2 = _time(lambda e=expr: count_matching(e, now=now, fast=False), 1)
            exists += samples
            if r < baseline_runs:
                samples, n3 = _time(lambda i=i: _baseline(i, now).count(), 1)
                chain += samples
        assert n == n2 == n3, (expr, n, n2, n3)
        ratio = _p(chain, 0.5) / _p(fast, 0.5)
        lines.append(
            f"| `{expr}` | {n:,} | {_p(fast, .5):.0f} / {_p(fast, .95):.0f} | "
            f"{_p(exists, .5):.0f} / {_p(exists, .95):.0f} | "
            f"{_p(chain, .5):.0f} / {_p(chain, .95):.0f} | {ratio:.1f}× |")
        print(lines[-1], flush=True)
    lines += ["", f"Cold start, once per process (not in the timings above): the tag bitmaps "
                  f"{built:.2f} s, then the field columns {built_fields:.2f} s. Afterwards each "
                  f"count first catches up with the change log (one indexed query)."]
    return lines


def bench_bulk() -> list[str]:
    from django.db import connection

    from tagging.audiences.selectors import count_matching, ids_matching
    from tagging.audiences.services import bulk_operation_start, bulk_operation_undo, bulk_preview
    from tagging.models import AssignmentHistory, Tag

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
    expr = '"Interesse-Make-up" AND "Kaufphase-Abgeschlossen"'
    add = [Tag.objects.select_related("dimension").get(
        name="Hohes Potenzial - Nachverfolgung erforderlich")]
    remove = [Tag.objects.select_related("dimension").get(name="Inaktiver Kunde")]
    started = time.perf_counter()
    contacts = ids_matching(expr)
    preview = bulk_preview(contacts=contacts, add=add, remove=remove)
    previewed = time.perf_counter()
    bulk = bulk_operation_start(contacts=contacts, add=add, remove=remove, preview=preview,
                                selection=expr, background=False)
    done = time.perf_counter()
    count_matching(expr)
    caught_up = time.perf_counter() - done
    history = AssignmentHistory.objects.filter(operation=bulk.operation).count()
    undo_started = time.perf_counter()
    bulk_operation_undo(bulk=bulk)
    undone = time.perf_counter()
    count_matching(expr)
    caught_up_undo = time.perf_counter() - undone
    # Leave the history as the dataset built it (one row per assignment), so that every run
    # measures against the same history size instead of the sum of earlier runs.
    AssignmentHistory.objects.filter(
        operation__in=[bulk.operation, uuid.uuid5(bulk.operation, "undo")]).delete()
    line = (f"Bulk “Manage tags” on `{expr}` ({bulk.total:,} contacts): "
            f"+{bulk.added:,} “{add[0].name}”, −{bulk.removed:,} “{remove[0].name}”, "
            f"{history:,} history rows. Preview (counts per tag) "
            f"{(previewed - started):.2f} s; apply incl. history, change-log triggers "
            f"and the BulkOperation record {(done - previewed):.2f} s; "
            f"**end to end {(done - started):.2f} s**. Undo: {(undone - undo_started):.2f} s. "
            f"The first count after each, catching up with the change log: {caught_up:.2f} s "
            f"and {caught_up_undo:.2f} s.")
    print(line, flush=True)
    return [line]


def bench_page(runs: int) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    user, _ = get_user_model().objects.get_or_create(
        username="bench-audiences", defaults={"is_staff": True, "is_superuser": True})
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    url = reverse("admin:crm_contact_changelist")
    lines = ["| changelist page | first request (ms) | p50 (ms) | p95 (ms) |",
             "|---|---:|---:|---:|"]
    for label, params in [
        ("no filter (estimated total)", {}),
        ("expression: " + EXPRESSIONS[0], {"expr": EXPRESSIONS[0]}),
        ("expression: " + EXPRESSIONS[6], {"expr": EXPRESSIONS[6]}),
        ("expression: " + EXPRESSIONS[7], {"expr": EXPRESSIONS[7]}),
        ("expression, page 20", {"expr": EXPRESSIONS[1], "p": "20"}),
        ("live count endpoint: " + EXPRESSIONS[1], "count"),
    ]:
        if params == "count":
            target, params = reverse("admin:crm_contact_audience_count"), \
                {"expr": EXPRESSIONS[1]}
        else:
            target = url
        first, _response = _time(lambda t=target, p=params: client.get(t, p), 1)
        samples, response = _time(lambda t=target, p=params: client.get(t, p), runs)
        assert response.status_code == 200, (label, response.status_code)
        lines.append(f"| {label} | {first[0]:.0f} | {_p(samples, .5):.0f} | "
                     f"{_p(samples, .95):.0f} |")
        print(lines[-1], flush=True)
    return lines


def run(argv: list[str]) -> str:
    from django.db import connection

    from benchmarks.dataset import ensure_dataset, settle

    load_before = os.getloadavg()[0]
    sizes = ensure_dataset()
    settle()
    if connection.vendor != "postgresql":
        raise SystemExit("The audiences benchmark needs PostgreSQL.")
    runs, baseline_runs = _opt(argv, "runs", 9), _opt(argv, "baseline-runs", 3)
    out = [
        f"Dataset: {sizes['contacts']:,} contacts, {sizes['assignments']:,} assignments, "
        f"{sizes['tags']} tags. {runs} runs per expression for the fast path and EXISTS, "
        f"{baseline_runs} for the ORM chain; one connection, machine shared with other work.",
        "",
    ]
    out += bench_counts(runs, baseline_runs)
    if "--skip-bulk" not in argv:
        out += ["", *bench_bulk()]
    if "--skip-page" not in argv:
        out += ["", *bench_page(max(5, runs))]
    out += ["", f"_Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1-minute load "
                f"average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
                f"(2 cores shared with other engineers' tests and benchmarks)._"]
    return "\n".join(out)

