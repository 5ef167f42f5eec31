"""The sending ceiling (issue #19): 80 and 1,000 msg/s, a long run, kill -9 three times.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tagwerk_send \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/6 make bench BENCH_ARGS="sending --steady=60000"
    # --size=6000 (default): recipients of the 80 and 1,000 msg/s rows
    # --steady=N: also N sends at 1,000 msg/s, then with status webhooks, then with a worker
    #   killed (kill -9 of its process group) --kills=3 times and restarted, as a supervisor does
    # --before=DIR: the same rows from another checkout first (e.g. a git worktree)

Needs PostgreSQL, Redis (broker and token bucket on ``BENCH_REDIS_URL``, which is
flushed) and ``wrk``. Measures first the fake Cloud API's own ceiling (wrk posting
template messages over 16 keep-alive connections, no rate limit). Each row runs the
processes as docs/operations.md starts them: two Celery workers
(``celery -A config worker --concurrency 4 -Q celery,webhooks``, prefork), one
``celery -A config beat``, and — in the webhook rows — gunicorn taking the status
webhooks the fake server posts for each accepted message (so that a message whose worker
died mid-request, or whose answer was lost, is known as sent). The fake server enforces
the configured rate (130429 above it in any 1-second window) and counts duplicates and
losses.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_campaigns import (
    NUMBER,
    REDIS,
    ROOT,
    SECRET,
    TOKEN,
    Workers,
    _env,
    _outcome,
    _prepare,
    gunicorn,
)

TITLE = "Sending ceiling: 80 and 1,000 msg/s, a 60,000-message campaign, kill -9 three times"
SHORT, LONG = "BenchSendShort", "BenchSendLong"  # the two audiences (--size, --steady)
GRACE = 60  # WHATSAPP_INFLIGHT_GRACE_SECONDS of these runs (600 in production)
WRK_POST = """wrk.method = "POST"
wrk.body = '{"messaging_product": "whatsapp", "to": "4917000000000", "type": "template", ' ..
           '"template": {"name": "bench_update", "language": {"code": "de"}}}'
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.headers["Content-Type"] = "application/json"
"""


def _recipients(city: str, count: int, first: int) -> None:
    """``count`` opted-in contacts in ``city``, numbered from ``first`` on."""
    from crm.models import Contact

    Contact.objects.bulk_create([
        Contact(phone=f"+4917{first + i:08d}", country="DE", city=city,
                consent_status="opted_in") for i in range(count)
    ], batch_size=5000, ignore_conflicts=True)


def _campaign(city: str, rate: int):
    """A campaign to everybody in ``city``, sending (its recipients snapshotted)."""
    from campaigns.services import campaign_create, campaign_start, template_create

    template = template_create(name="bench_update", language="de", category="utility",
                               body="Ihre Bestellung ist unterwegs.")
    campaign = campaign_create(name=f"Ceiling {rate}/s {time.strftime('%H%M%S')}",
                               template=template, audience=f'city = "{city}"',
                               rate_per_second=rate, phone_number_id=NUMBER)
    campaign_start(campaign=campaign)
    return campaign


def _ceiling(seconds: int = 8, connections: int = 16) -> float:
    """Requests per second the fake server answers with nothing else to do."""
    from tests.campaigns.fake_cloud_api import FakeCloudAPI

    script = Path(tempfile.gettempdir()) / "tagwerk_fake_post.lua"
    script.write_text(WRK_POST)
    with FakeCloudAPI(token=TOKEN) as api:
        out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s",
                              str(script), f"{api.url}/v21.0/bench-number/messages"],
                             capture_output=True, text=True, check=True, timeout=seconds + 30)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out.stdout).group(1))


@contextlib.contextmanager
def beat(api_url: str):
    """One ``celery beat``, as docs/operations.md runs it (its schedule file in a temp dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "warning",
             "-s", str(Path(tmp) / "beat-schedule"), "--pidfile", ""],
            cwd=ROOT, env={**_env(api_url), "WHATSAPP_INFLIGHT_GRACE_SECONDS": str(GRACE)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def _wait_done(campaign, timeout: float, kills: list[float], workers: Workers) -> float:
    """Wait for the campaign to finish, killing a worker at each of ``kills`` (seconds)."""
    from campaigns.models import Campaign

    started, pending = time.monotonic(), list(kills)
    while time.monotonic() - started < timeout:
        elapsed = time.monotonic() - started
        if pending and elapsed >= pending[0]:
            victim = (len(kills) - len(pending)) % len(workers.procs)
            workers.kill(victim)
            workers.start(victim)  # as a supervisor restarts it
            pending.pop(0)
        if Campaign.objects.get(pk=campaign.pk).status != "sending":
            break
        time.sleep(0.5)
    return time.monotonic() - started


def _run(root: Path, rate: int, city: str, refuse_share: float = 0.0, kills: int = 0,
         webhooks: bool = False) -> dict:
    from campaigns.models import Send
    from tests.campaigns.fake_cloud_api import FakeCloudAPI

    _vacuum()
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(gunicorn(workers=2)) if kills or webhooks else ""
        api = stack.enter_context(FakeCloudAPI(
            token=TOKEN, max_mps=rate, webhook_url=hook, app_secret=SECRET,
            webhook_statuses=("sent",), webhook_batch=50))
        env = {"WHATSAPP_INFLIGHT_GRACE_SECONDS": str(GRACE)}
        workers = Workers(2, api.url, root=root, pool="prefork", extra_env=env)
        stack.callback(workers.stop)
        stack.enter_context(beat(api.url))
        campaign = _campaign(city, rate)
        sends = Send.objects.filter(campaign=campaign)
        size = sends.count()
        if refuse_share:
            for phone in sends.order_by("?").values_list("phone", flat=True)[
                    :int(size * refuse_share)]:
                api.inject(130429, to=phone)
        nominal = size / rate
        took = _wait_done(campaign, nominal * 3 + 120 + (GRACE + 30) * bool(kills),
                          [nominal * (k + 1) / (kills + 1) for k in range(kills)], workers)
        time.sleep(3 if hook else 1)  # the last webhooks settle
        result = _outcome(api, campaign)
    return {**result, "wall_s": took, "load": os.getloadavg()[0]}


def _vacuum() -> None:
    """Each row starts from a vacuumed send table, as autovacuum keeps it between campaigns."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_send")


def _row(label: str, rate: int, r: dict) -> str:
    return (f"| {label} | {rate:,} | {r['recipients']:,} | {r['rate']:.0f} msg/s "
            f"({r['rate'] / rate * 100:.0f} %) | {r['per_second_median']:.0f} "
            f"({r['per_second_min']}–{r['per_second_max']}) | {r['max_window']} | "
            f"{r['refused_130429']} | {r['duplicates']} | {r['lost']} | {r['unsent']} | "
            f"{r['wall_s']:.0f} s | {r['load']:.1f} |")


def _option(argv: list[str], name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)


def run(argv: list[str]) -> str:
    from config.celery import app

    app.conf.broker_url = REDIS
    size, steady = int(_option(argv, "size", "6000")), int(_option(argv, "steady", "0"))
    kills, before = int(_option(argv, "kills", "3")), _option(argv, "before", "")
    _prepare(0)  # migrated, broker flushed, earlier benchmark campaigns cancelled
    _recipients(SHORT, size, 90_000_000)
    _recipients(LONG, steady, 80_000_000)
    load = [os.getloadavg()[0]]
    ceiling = _ceiling()
    checkouts = [("before", Path(before))] if before else []
    checkouts.append(("this checkout", ROOT))
    rows = []
    for label, root in checkouts:
        for rate, share in ((80, 0.0), (80, 0.01), (1000, 0.0)):
            result = _run(root, rate, SHORT, share)
            rows.append(_row(f"{label}{', 1 % refused once' if share else ''}", rate, result))
            print(rows[-1], flush=True)
    if steady:  # a long run, so that the start (loops fanning out) weighs less
        for label, n, hooks in (
                ("this checkout, longer run", 0, False),
                ("this checkout, longer run, with `sent` webhooks", 0, True),
                (f"this checkout, longer run, with webhooks, kill -9 × {kills}", kills, True)):
            rows.append(_row(label, 1000, _run(ROOT, 1000, LONG, kills=n, webhooks=hooks)))
            print(rows[-1], flush=True)
    load.append(os.getloadavg()[0])
    return "\n".join([
        f"## {TITLE}", "",
        f"2 cores; 1-minute load average {min(load):.1f} at the start and {max(load):.1f} at "
        "the end (the last column: at the end of each row).", "",
        f"Fake Cloud API's own ceiling (tests/campaigns/fake_cloud_api.py, no rate limit, wrk "
        f"posting template messages over 16 keep-alive connections): **{ceiling:,.0f} "
        "requests/s**.", "",
        "Each row: the recipients (one city's contacts), two Celery workers "
        "(`celery -A config worker --concurrency 4 -Q celery,webhooks`, prefork) started from "
        "the checkout named, with the default settings (send slots per campaign: 2 at 80 "
        "msg/s, 4 at 1,000 — one per 250 msg/s, `WHATSAPP_SEND_CONCURRENCY` at most; up to "
        "64 requests in flight per slot), one "
        "`celery -A config beat`, Redis broker and token bucket, "
        "PostgreSQL, the fake server enforcing the configured rate (130429 above it in any "
        "1-second window). Achieved rate: accepted requests from the first to the last; "
        "duplicates and losses counted at the fake server. Webhook rows: gunicorn "
        "(`config.wsgi`, 2 workers) takes the `sent` webhooks the fake server posts for each "
        "accepted message (up to 50 per webhook) and the workers apply them, on the same 2 "
        "cores. Kill row: a worker's process group is killed with SIGKILL at ¼, ½ and ¾ of "
        f"the nominal duration and started again. In-flight grace {GRACE} s: a request whose "
        "answer was lost is sent again after it unless a webhook said it arrived.", "",
        "| checkout | configured msg/s | recipients | achieved | whole seconds: median "
        "(min–max) | most in any 1-s window | refused (130429) | duplicates | lost "
        "| unsent at time limit | wall time | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows, ""])
