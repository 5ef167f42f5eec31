"""Rules and event ingestion at 1,000,000 contacts / ~10,000,000 assignments (PostgreSQL).

1. All scheduled starter rules over the whole base, set-based (``rules_run``),
   each rule's time; then the same run again (idempotent: nothing to do).
   Baseline side by side: the same rules evaluated contact by contact in
   Python (one segment check and, where needed, one ``tags_change`` per
   contact) on a random sample, scaled to the base. Both run inside a
   transaction that is rolled back, so the dataset stays as built.
   The clock is also moved one day on, to time the steady daily run.
2. Event ingestion through ``POST /api/events/``: gunicorn (2 × cores sync
   workers) on loopback, as many client threads sending batches of 1,000 events (purchases,
   reads, interactions, cart abandonments) for existing contacts, with facts
   updated and the event-rule task enqueued on Redis. Then the event rules
   (3a/3b) applied to those batches in-process, as a worker would.

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench_rules make bench BENCH_ARGS=rules
    (options: --sample N, --batches N, --skip-rules, --skip-ingest, --before=PATH)

``--before=PATH`` also times the set-based runs with the code checked out at PATH
(e.g. ``git archive main | tar -x -C /tmp/main``), in a subprocess against the same
database just before this code's runs, and puts both side by side.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

TITLE = "Rules: starter rules over 1M contacts, event ingestion"

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("BENCH_RULES_PORT", "8401"))
BROKER = os.environ.get("BENCH_RULES_BROKER", "redis://127.0.0.1:6379/5")
# gunicorn's usual 2 × cores: while one worker waits on PostgreSQL, another parses JSON.
WORKERS = 2 * (os.cpu_count() or 1)


class _Rollback(Exception):
    pass


def _option(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def _prepare() -> None:
    from django.core.management import call_command

    from benchmarks.dataset import ensure_dataset
    from tagging.rules.starter import rules_load_starter

    ensure_dataset()
    call_command("migrate", verbosity=0)
    rules_load_starter()
    # Earlier runs of this benchmark roll back a million writes: clear their dead rows
    # (autovacuum would, later) so that index-only scans and statistics are as built.
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("crm_contact", "crm_event", "tagging_tagassignment",
                      "tagging_assignmenthistory"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _scheduled_rules():
    from tagging.rules.models import Rule, RuleTrigger
    from tagging.rules.services import rules_ordered

    return rules_ordered(Rule.objects.filter(enabled=True, trigger=RuleTrigger.SCHEDULE))


def _set_based():
    """First run (the built dataset ignores the rules), next day's run, and a re-run."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from tagging.rules.services import rules_run

    now = timezone.now()
    results = {}
    try:
        with transaction.atomic():
            for label, when in (("first", now), ("next_day", now + timedelta(days=1)),
                                ("again", now + timedelta(days=1))):
                started = time.monotonic()
                outcomes = rules_run(rules=_scheduled_rules(), now=when)
                results[label] = (outcomes, time.monotonic() - started)
                failed = [o for o in outcomes if o.errors]
                if failed:
                    raise SystemExit(f"{failed[0].rule}: {failed[0].errors}")
            assert sum(o.added + o.removed for o in results["again"][0]) == 0, \
                "a second run at the same time changed tags"
            raise _Rollback
    except _Rollback:
        pass
    return results


def _set_based_before(path: str) -> dict:
    """``_set_based`` of the code at ``path``, run in a subprocess (its own imports) against
    the same database; then the tables its rolled-back writes left dead rows in are
    vacuumed, as ``_prepare`` does, so that this code's runs start from the same state."""
    import json

    from django.db import connection

    code = (
        "import json\n"
        "from benchmarks.run import setup_django\n"
        "setup_django()\n"
        "from benchmarks.bench_rules import _set_based\n"
        "results = _set_based()\n"
        "print('RESULT ' + json.dumps({label: {'seconds': seconds, 'rules': [\n"
        "    [o.rule, o.matched, o.added + o.removed, o.duration_ms] for o in outcomes]}\n"
        "    for label, (outcomes, seconds) in results.items()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=path, env=dict(os.environ),
                          capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"the run of {path} failed:\n{done.stderr[-2000:]}")
    with connection.cursor() as cursor:
        for table in ("tagging_tagassignment", "tagging_assignmenthistory"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return json.loads(lines[-1][len("RESULT "):])


def _per_contact(sample: int) -> dict[str, float]:
    """Seconds per contact for each rule, evaluated and applied one contact at a time."""
    from django.db import transaction
    from django.utils import timezone

    from crm.models import Contact
    from tagging.audiences.selectors import contacts_matching
    from tagging.models import Source, TagAssignment
    from tagging.services import tags_change

    rng = random.Random(7)
    top = Contact.objects.order_by("-pk").values_list("pk", flat=True)[0]
    ids = sorted(rng.sample(range(1, top + 1), sample))
    per_rule: dict[str, float] = {}
    now = timezone.now()
    try:
        with transaction.atomic():
            for rule in _scheduled_rules():
                add = list(rule.add_tags.select_related("dimension"))
                remove = list(rule.remove_tags.select_related("dimension"))
                started = time.monotonic()
                for contact_id in ids:
                    one = Contact.objects.filter(pk=contact_id)
                    matches = contacts_matching(rule.segment, queryset=one, now=now).exists() \
                        if rule.segment.strip() else True
                    held = set(TagAssignment.objects.filter(contact_id=contact_id)
                               .values_list("tag_id", flat=True))
                    if matches:
                        gain = [t for t in add if t.pk not in held]
                        lose = [t for t in remove if t.pk in held]
                    else:
                        gain, lose = [], [t for t in add if rule.sync and t.pk in held]
                    if gain or lose:
                        tags_change(contacts=[contact_id], add=gain, remove=lose,
                                    source=Source.RULE, source_ref=f"rule:{rule.pk}")
                per_rule[rule.name] = (time.monotonic() - started) / sample
            raise _Rollback
    except _Rollback:
        pass
    return per_rule


def _rules_section(sample: int, before_path: str | None) -> str:
    from crm.models import Contact

    contacts = Contact.objects.count()
    before = _set_based_before(before_path) if before_path else None
    load_before = os.getloadavg()[0] if before else None
    results = _set_based()
    load_after = os.getloadavg()[0]
    per_contact = _per_contact(sample)
    first, first_s = results["first"]
    next_day, next_s = results["next_day"]
    again_s = results["again"][1]
    compared = ""
    if before:
        compared = (
            f" **Before** is the same run with the code at `{before_path}` (the main branch), "
            "in a subprocess just before this code's run, against the same database (its "
            "rolled-back writes vacuumed away in between); **after** is this code."
        )
    lines = [
        f"### Scheduled starter rules over {contacts:,} contacts (PostgreSQL)",
        "",
        f"`rules_run` of the {len(first)} scheduled starter rules, highest priority first, "
        "inside a transaction rolled back afterwards. **First run**: the built dataset's tags "
        "ignore the rules, so this run corrects ~1M assignments. **Next day**: the same rules "
        "with the clock one day later (what the daily beat run does). Baseline: the same "
        f"rules contact by contact in Python (segment check, then `tags_change` for that "
        f"contact) on a random sample of {sample:,} contacts, scaled to {contacts:,}; it "
        f"starts from the same state as the first run.{compared}",
        "",
    ]
    if before:
        lines += [
            "| rule | matched | changed (first) | first run before | first run after | "
            "changed (next day) | next day before | next day after | "
            "contact by contact (scaled) | ratio to first run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        old_first = {r[0]: r for r in before["first"]["rules"]}
        old_next = {r[0]: r for r in before["next_day"]["rules"]}
    else:
        lines += [
            "| rule | matched | changed (first) | first run | changed (next day) | next day | "
            "contact by contact (scaled) | ratio to first run |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
    total_baseline = 0.0
    for one, day in zip(first, next_day, strict=True):
        scaled = per_contact[one.rule] * contacts
        total_baseline += scaled
        seconds = one.duration_ms / 1000
        if before:
            was_first, was_next = old_first.get(one.rule), old_next.get(one.rule)
            lines.append(
                f"| {one.rule} | {one.matched:,} | {one.added + one.removed:,} | "
                f"{_seconds(was_first)} | {seconds:.1f} s | {day.added + day.removed:,} | "
                f"{_seconds(was_next)} | {day.duration_ms / 1000:.1f} s | {scaled:,.0f} s | "
                f"{scaled / max(seconds, 0.001):,.0f}× |")
        else:
            lines.append(
                f"| {one.rule} | {one.matched:,} | {one.added + one.removed:,} | "
                f"{seconds:.1f} s | {day.added + day.removed:,} | {day.duration_ms / 1000:.1f} s"
                f" | {scaled:,.0f} s | {scaled / max(seconds, 0.001):,.0f}× |")
    changed_first = sum(o.added + o.removed for o in first)
    changed_next = sum(o.added + o.removed for o in next_day)
    if before:
        lines.append(
            f"| **all** | | {changed_first:,} | **{before['first']['seconds']:.1f} s** | "
            f"**{first_s:.1f} s** | {changed_next:,} | "
            f"**{before['next_day']['seconds']:.1f} s** | **{next_s:.1f} s** | "
            f"**{total_baseline:,.0f} s** | {total_baseline / max(first_s, 0.001):,.0f}× |")
    else:
        lines.append(
            f"| **all** | | {changed_first:,} | **{first_s:.1f} s** | {changed_next:,} | "
            f"**{next_s:.1f} s** | **{total_baseline:,.0f} s** | "
            f"{total_baseline / max(first_s, 0.001):,.0f}× |")
    verdicts = [_goal("first run", first_s, 60), _goal("next-day run", next_s, 20)]
    load = f"{load_after:.1f}"
    if before:
        load = (f"{load_before:.1f} after the before-runs, {load_after:.1f} after this code's "
                "runs")
        changed_before = sum(r[2] for r in before["first"]["rules"])
        if changed_before != changed_first:
            verdicts.append(f"The before-run changed {changed_before:,} assignments, this code "
                            f"{changed_first:,}: their clocks are minutes apart, and the rules' "
                            "time windows (“within 14d”) move with the clock.")
        else:
            verdicts.append("Both changed the same number of assignments.")
    lines += [
        "",
        " ".join(verdicts) + f" A re-run at the same time changed nothing and took "
        f"{again_s:.1f} s. The machine's load average (1 min) during the runs: {load} on 2 "
        "cores (shared with other benchmarks).",
    ]
    return "\n".join(lines)


def _seconds(row: list | None) -> str:
    return "–" if row is None else f"{row[3] / 1000:.1f} s"


def _goal(label: str, seconds: float, target: float) -> str:
    if seconds <= target:
        return f"Goal {label} ≤ {target:.0f} s: {seconds:.1f} s, met."
    return (f"Goal {label} ≤ {target:.0f} s: {seconds:.1f} s, NOT met "
            f"({seconds - target:.1f} s over).")


# --- ingestion -----------------------------------------------------------------------------


def _gunicorn(env: dict) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", str(WORKERS), "-b",
         f"127.0.0.1:{PORT}",
         "--log-level", "warning", "--timeout", "120"],
        cwd=ROOT, env=env)
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{PORT}/api/events/", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("gunicorn did not start")


def _batch(rng: random.Random, run: str, number: int, top: int) -> list[dict]:
    kinds = ["purchase"] * 3 + ["message_read"] * 4 + ["interaction"] * 2 + ["cart_abandoned"]
    events = []
    for i in range(1000):
        kind = rng.choice(kinds)
        event = {"type": kind, "phone": f"+49151{rng.randint(2, top):08d}",
                 "source_id": f"{run}-{number}-{i}"}
        if kind == "purchase":
            event.update(amount=f"{rng.randint(5, 200)}.90", currency="EUR",
                         product=rng.choice(["Lippenstift Rot", "Puder", "Mascara"]),
                         category="Make-up")
        events.append(event)
    return events


def _ingest_section(batches: int) -> str:
    import httpx
    import redis
    from django.conf import settings
    from django.db import connection

    from crm.models import Contact, Event
    from crm.tokens import api_token_create
    from tagging.rules.services import rules_apply_to_events

    top = min(Contact.objects.count(), 1_000_000)
    raw = api_token_create(name=f"bench {uuid.uuid4().hex[:6]}")[1]
    db = settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING", "CELERY_BROKER_URL": BROKER,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    run = uuid.uuid4().hex[:8]
    rng = random.Random(11)
    payloads = [_batch(rng, run, n, top) for n in range(batches)]
    import resource

    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = _gunicorn(env)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(mine: list[list[dict]]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60,
                          headers={"Authorization": f"Bearer {raw}"}) as http:
            for body in mine:
                started = time.monotonic()
                response = http.post("/api/events/", json=body)
                with lock:
                    latencies.append(time.monotonic() - started)
                    if response.status_code != 201:
                        errors.append(f"{response.status_code} {response.text[:200]}")

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM crm_event")
            before = cursor.fetchone()[0]
        queue = redis.Redis.from_url(BROKER)
        queued_before = queue.llen("celery")
        threads = [threading.Thread(target=client, args=(payloads[i::WORKERS],))
                   for i in range(WORKERS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    # gunicorn's master reaps its workers, so their CPU time reaches us with the master's.
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    app_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime
                                                              - cpu_before.ru_stime)
    if errors:
        raise SystemExit(f"ingestion failed: {errors[:3]}")
    stored = Event.objects.count() - before
    sample_phone = payloads[0][0]["phone"]
    facts = Contact.objects.filter(phone=sample_phone).values(
        "purchase_count", "last_read_at", "last_interaction_at").first()
    facts = ", ".join(f"{k}={v:%Y-%m-%d %H:%M}" if hasattr(v, "strftime") else f"{k}={v}"
                      for k, v in facts.items())
    queued = queue.llen("celery") - queued_before
    queue.delete("celery")  # nobody consumes in this benchmark (Redis DB 5 is this area's)

    # The event rules, applied to the same batches as a worker would (no broker in between).
    ids = list(Event.objects.filter(source="api", source_id__startswith=f"{run}-")
               .order_by("pk").values_list("pk", flat=True))
    rule_started = time.monotonic()
    changes = 0
    for start in range(0, len(ids), 1000):
        for outcome in rules_apply_to_events(event_ids=ids[start:start + 1000]):
            changes += outcome.added + outcome.removed
    rule_seconds = time.monotonic() - rule_started
    latencies.sort()
    rate = stored / elapsed
    return "\n".join([
        "### Event ingestion through `POST /api/events/`",
        "",
        f"gunicorn, {WORKERS} sync workers, on loopback (127.0.0.1:{PORT}); {WORKERS} client "
        f"threads (httpx, keep-alive) sending {batches} batches of 1,000 events for random "
        "existing contacts. "
        "Each request: token check, validation, one bulk INSERT of the events, one set-based "
        "UPDATE of the contacts' facts, the event-rule task enqueued on Redis after commit.",
        "",
        "| events stored | seconds | events/s | batch p50 | batch p95 |",
        "|---:|---:|---:|---:|---:|",
        f"| {stored:,} | {elapsed:.1f} | **{rate:,.0f}** | "
        f"{latencies[len(latencies) // 2] * 1000:.0f} ms | "
        f"{latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms |",
        "",
        f"Target ≥ 2,000 events/s: {'met' if rate >= 2000 else 'NOT met'} "
        f"(load average {os.getloadavg()[0]:.1f} on 2 cores). CPU time of the gunicorn "
        f"processes (start-up included): {app_cpu:.1f} s, i.e. "
        f"{stored / max(app_cpu, 0.001):,.0f} events per CPU-second of the web tier; "
        "PostgreSQL's share is not included. Facts updated "
        f"(e.g. {sample_phone}: {facts}). Tasks enqueued for event rules: {queued} "
        "(one per batch).",
        "",
        f"Event rules 3a/3b applied to the same {len(ids):,} events in batches of 1,000, "
        f"in-process as a worker runs them: {rule_seconds:.1f} s "
        f"({len(ids) / max(rule_seconds, 0.001):,.0f} events/s), {changes:,} tag changes.",
    ])


def run(argv: list[str]) -> str:
    _prepare()
    sections = []
    if "--skip-rules" not in argv:
        before = next((a.split("=", 1)[1] for a in argv if a.startswith("--before=")), None)
        sections.append(_rules_section(_option(argv, "sample", 1000), before))
    if "--skip-ingest" not in argv:
        sections.append(_ingest_section(_option(argv, "batches", 40)))
    return "## Rules\n\n" + "\n\n".join(sections)
