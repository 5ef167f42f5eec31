"""Campaign sending against the fake Cloud API on loopback, with real Celery workers.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tagwerk_bench_campaigns \\
        make bench BENCH_ARGS=campaigns

Needs Redis (broker and token bucket on DB 6). Starts, and stops again, two
Celery workers (thread pool, 4 each), gunicorn on port 8590 and the fake Cloud API on a
port in 8500-8589. Runs:

1. 20,000 sends at a configured 80 msg/s: achieved rate, the most sends in
   any 1-second window, duplicates and losses (counted at the fake server);
2. 10,000 sends at a configured 1,000 msg/s: achieved rate and bottleneck;
3. webhook intake: signed status webhooks against gunicorn, rate and latency;
4. crash test: kill -9 a worker 10 times during a 5,000-recipient send.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

TITLE = "Campaigns: throttled sending, webhook intake, crash safety"
ROOT = Path(__file__).resolve().parent.parent
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
GUNICORN_PORT = 8590
TOKEN, SECRET, NUMBER = "bench-token", "bench-app-secret", "bench-number"
CITY = "BenchKampagne"


def _env(api_url: str = "") -> dict[str, str]:
    from django.conf import settings

    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": url, "CELERY_BROKER_URL": REDIS, "REDIS_URL": REDIS,
            "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "0",
            "LOG_LEVEL": "WARNING",
            "WHATSAPP_BACKEND": "campaigns.backends.cloud_api.CloudAPIBackend",
            "WHATSAPP_GRAPH_BASE_URL": api_url, "WHATSAPP_ACCESS_TOKEN": TOKEN,
            "WHATSAPP_PHONE_NUMBER_ID": NUMBER, "WHATSAPP_APP_SECRET": SECRET,
            "WHATSAPP_INFLIGHT_GRACE_SECONDS": "20"}


class Workers:
    """Celery workers (``-Q celery,webhooks``, 4 each), each in a process group of its own.

    ``pool="prefork"`` runs them as docs/operations.md does; ``kill`` is kill -9 of the
    whole group (the worker and its pool processes, as when its machine dies).
    """

    def __init__(self, count: int, api_url: str, root: Path = ROOT, pool: str = "threads",
                 extra_env: dict[str, str] | None = None):
        self.env, self.procs = {**_env(api_url), **(extra_env or {})}, {}
        self.root, self.pool = root, pool
        for index in range(count):
            self.start(index)
        time.sleep(8)  # let them connect to the broker

    def start(self, index: int) -> None:
        self.procs[index] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", self.pool, "-c", "4",
             "-n", f"bench{index}-{time.time_ns()}@%h", "-Q", "celery,webhooks", "-l", "warning",
             "--without-gossip",
             "--without-mingle", "--without-heartbeat"],
            cwd=self.root, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def kill(self, index: int) -> None:
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def gunicorn(api_url: str = "", workers: int = 3):
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{GUNICORN_PORT}",
         "-w", str(workers), "-k", "gthread", "--threads", "4", "--log-level", "warning",
         "--preload"],
        cwd=ROOT, env=_env(api_url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    for _ in range(60):
        try:
            httpx.get(f"http://127.0.0.1:{GUNICORN_PORT}/webhooks/whatsapp/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    try:
        yield f"http://127.0.0.1:{GUNICORN_PORT}/webhooks/whatsapp/"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _prepare(total: int) -> None:
    import redis
    from django.core.management import call_command

    from campaigns.models import Campaign, Lease, Sender
    from campaigns.services import campaign_cancel
    from crm.models import Contact

    call_command("migrate", verbosity=0)
    redis.Redis.from_url(REDIS).flushdb()  # our own DB: broker queues and bucket state
    Lease.objects.all().delete()
    for campaign in Campaign.objects.filter(status__in=["sending", "paused", "scheduled"]):
        campaign_cancel(campaign=campaign, reason="benchmark reset")
    Sender.objects.filter(phone_number_id=NUMBER).delete()
    have = Contact.objects.filter(city__startswith=CITY).count()
    if have < total:
        Contact.objects.bulk_create([
            Contact(phone=f"+4917{9000000 + i:08d}", country="DE", city=f"{CITY}{i % 4}",
                    consent_status="opted_in") for i in range(have, total)
        ], batch_size=5000, ignore_conflicts=True)


def _campaign(name: str, cities: int, rate: int):
    from campaigns.services import campaign_create, campaign_start, template_create

    template = template_create(name="bench_update", language="de", category="utility",
                               body="Ihre Bestellung ist unterwegs.")
    audience = " OR ".join(f'city = "{CITY}{i}"' for i in range(cities))
    campaign = campaign_create(name=f"{name} {time.strftime('%H%M%S')}", template=template,
                               audience=audience, rate_per_second=rate,
                               phone_number_id=NUMBER)
    started = time.monotonic()
    snapshot = campaign_start(campaign=campaign)
    return campaign, snapshot, time.monotonic() - started


def _drive(campaign, timeout: float, during=None) -> float:
    """Play beat (tick every 2 s) until the campaign is done; return seconds taken."""
    from campaigns.models import Campaign
    from campaigns.tasks import campaigns_tick_task

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if during:
            during(time.monotonic() - started)
        campaigns_tick_task()  # what beat's entry runs: dispatches sends and webhook drains
        if Campaign.objects.get(pk=campaign.pk).status != "sending":
            break
        time.sleep(2)
    return time.monotonic() - started


def _outcome(api, campaign) -> dict:
    from campaigns.models import Send

    ours = {f"tw:{pk}" for pk in Send.objects.filter(campaign=campaign)
            .values_list("pk", flat=True)}
    accepted = [r for r in api.accepted()
                if r["body"].get("biz_opaque_callback_data") in ours]
    times = sorted(r["at"] for r in accepted)
    per_to = Counter(r["to"] for r in accepted)
    phones = {p.lstrip("+") for p in Send.objects.filter(campaign=campaign)
              .values_list("phone", flat=True)}
    seconds = Counter(int(t - times[0]) for t in times) if times else Counter()
    full = [seconds[s] for s in range(1, max(seconds, default=0))]  # whole seconds only
    final = {p.lstrip("+") for p in Send.objects.filter(
        campaign=campaign, status__in=["sent", "delivered", "read"]).values_list("phone",
                                                                                flat=True)}
    return {
        "recipients": len(phones), "accepted": len(accepted),
        "unsent": Send.objects.filter(campaign=campaign,
                                      status__in=["queued", "sending"]).count(),
        "refused_130429": sum(1 for r in api.requests if r["code"] == 130429),
        "duplicates": sum(n - 1 for n in per_to.values() if n > 1),
        # Lost: marked sent here, never accepted by the server.
        "lost": len(final - set(per_to)),
        "rate": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
        "max_window": api.max_in_any_window(1.0),
        "per_second_min": min(full, default=0), "per_second_max": max(full, default=0),
        "per_second_median": statistics.median(full) if full else 0,
        "statuses": dict(Counter(Send.objects.filter(campaign=campaign)
                                 .values_list("status", flat=True))),
    }


def _send_run(rate: int, cities: int, timeout: float) -> dict:
    from tests.campaigns.fake_cloud_api import FakeCloudAPI

    with FakeCloudAPI(token=TOKEN, max_mps=rate) as api:
        workers = Workers(2, api.url)
        try:
            campaign, _snapshot, snap_s = _campaign(f"Bench {rate}/s", cities, rate)
            took = _drive(campaign, timeout)
        finally:
            workers.stop()
        result = _outcome(api, campaign)
    return {**result, "snapshot_s": snap_s, "wall_s": took}


def _intake(seconds: float = 15.0, threads: int = 8) -> dict:
    import http.client

    from tests.campaigns.fake_cloud_api import sign, status_payload

    latencies: list[float] = []
    errors = Counter()
    stop = 0.0  # set once gunicorn is up and warm
    lock = threading.Lock()

    def load(worker: int) -> None:
        nonlocal stop
        local, n = [], 0
        while time.monotonic() < stop:
            n += 1
            body = json.dumps(status_payload(f"wamid.bench.{worker}.{n}", "delivered",
                                             "4917000000000")).encode()
            headers = {"Content-Type": "application/json",
                       "X-Hub-Signature-256": sign(body, SECRET)}
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", GUNICORN_PORT, timeout=10)
                conn.request("POST", "/webhooks/whatsapp/", body, headers)
                status = conn.getresponse().status
                conn.close()
            except OSError as exc:
                status = type(exc).__name__
            local.append(time.perf_counter() - started)
            if status != 200:
                errors[status] += 1
        with lock:
            latencies.extend(local)

    with gunicorn():
        _warm_up()
        stop = time.monotonic() + seconds
        pool = [threading.Thread(target=load, args=(i,)) for i in range(threads)]
        began = time.monotonic()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.monotonic() - began
    latencies.sort()
    return {"requests": len(latencies), "rate": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
            "errors": dict(errors), "threads": threads}


def _warm_up(requests: int = 30) -> None:
    """Let every gunicorn worker open its database and broker connections first."""
    import httpx

    from tests.campaigns.fake_cloud_api import sign, status_payload

    for n in range(requests):
        body = json.dumps(status_payload(f"wamid.warm.{n}", "sent", "4917000000000")).encode()
        httpx.post(f"http://127.0.0.1:{GUNICORN_PORT}/webhooks/whatsapp/", content=body,
                   headers={"X-Hub-Signature-256": sign(body, SECRET)}, timeout=30)


def _crash(kills: int = 10) -> dict:
    from tests.campaigns.fake_cloud_api import FakeCloudAPI

    with gunicorn() as hook_url, FakeCloudAPI(
            token=TOKEN, max_mps=80, webhook_url=hook_url, app_secret=SECRET,
            webhook_statuses=("sent",)) as api:
        workers = Workers(2, api.url)
        done = {"kills": 0, "next": 6.0}

        def chaos(elapsed: float) -> None:
            if done["kills"] < kills and elapsed >= done["next"]:
                victim = done["kills"] % 2
                workers.kill(victim)
                workers.start(victim)
                done["kills"] += 1
                done["next"] = elapsed + 5.0

        try:
            campaign, _snapshot, _ = _campaign("Bench crash", 1, 80)
            took = _drive(campaign, 420, during=chaos)
        finally:
            workers.stop()
        time.sleep(1)
        result = _outcome(api, campaign)
    return {**result, "kills": done["kills"], "wall_s": took}


def run(argv: list[str]) -> str:
    from django.conf import settings

    from config.celery import app

    app.conf.broker_url = REDIS
    settings.WHATSAPP_INFLIGHT_GRACE_SECONDS = 20
    quick = "--quick" in argv
    n80 = 4 if not quick else 1  # cities of 5,000 contacts
    _prepare(20_000)
    load_before = os.getloadavg()[0]
    lines = [f"## {TITLE}", "",
             "Fake Cloud API (tests/campaigns/fake_cloud_api.py) on loopback enforcing the "
             "configured rate (130429 above it), two Celery workers (4 threads each, 8 send "
             "loops, Redis broker DB 6, Redis token bucket), PostgreSQL, 2 shared cores. "
             "Duplicates and losses are counted at the fake server (accepted requests per "
             "recipient).", ""]
    r80 = _send_run(80, n80, timeout=5000 * n80 / 80 * 1.6 + 60)
    lines += [
        f"### {r80['recipients']:,} sends at a configured 80 msg/s", "",
        "| achieved rate | most in any 1-s window | whole seconds min–max | refused (130429) "
        "| duplicates | lost | unsent at time limit | snapshot | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {r80['rate']:.2f} msg/s ({(r80['rate'] / 80 - 1) * 100:+.1f}%) | "
        f"{r80['max_window']} | {r80['per_second_min']}–{r80['per_second_max']} | "
        f"{r80['refused_130429']} | {r80['duplicates']} | {r80['lost']} | {r80['unsent']} | "
        f"{r80['snapshot_s']:.1f} s | {r80['wall_s']:.0f} s |", "",
        f"Final statuses: {r80['statuses']}.", ""]
    r1k = _send_run(1000, 2, timeout=240)
    lines += [
        f"### {r1k['recipients']:,} sends at a configured 1,000 msg/s", "",
        "| achieved rate | most in any 1-s window | refused (130429) | duplicates | lost "
        "| unsent at time limit | wall time |", "|---|---|---|---|---|---|---|",
        f"| {r1k['rate']:.0f} msg/s | {r1k['max_window']} | {r1k['refused_130429']} | "
        f"{r1k['duplicates']} | {r1k['lost']} | {r1k['unsent']} | {r1k['wall_s']:.0f} s |", "",
        f"Final statuses: {r1k['statuses']}.", ""]
    intake = _intake()
    lines += [
        "### Webhook intake (gunicorn, 3 workers × 4 threads, loopback)", "",
        "| signed webhooks/s | p50 | p99 | errors | client threads |", "|---|---|---|---|---|",
        f"| {intake['rate']:.0f} | {intake['p50_ms']:.1f} ms | {intake['p99_ms']:.1f} ms | "
        f"{intake['errors'] or 0} | {intake['threads']} |", "",
        "Each request: HMAC check over the raw body, one INSERT of the body (SHA-256 unique), "
        "one Redis SET NX that queues a drain task only when none is waiting (the drain "
        "applies stored webhooks in batches); the load generator runs on the same 2 cores.",
        ""]
    crash = _crash()
    lines += [
        "### Crash test: kill -9 a worker during a 5,000-recipient send", "",
        "| kills | accepted | duplicates | lost | unsent at time limit | wall time |",
        "|---|---|---|---|---|---|",
        f"| {crash['kills']} | {crash['accepted']} | {crash['duplicates']} | {crash['lost']} | "
        f"{crash['unsent']} | {crash['wall_s']:.0f} s |", "",
        f"Final statuses: {crash['statuses']}. Sends stuck in flight are adopted by their "
        "`sent` webhook (callback data) or requeued after the grace period (20 s here).", ""]
    lines += [f"Load average (1 min) on the 2-core machine: {load_before:.1f} at the start, "
              f"{os.getloadavg()[0]:.1f} at the end (the benchmark's own workers, gunicorn, "
              "fake server and load generator share the 2 cores).", ""]
    return "\n".join(lines)
