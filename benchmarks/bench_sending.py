"""The sending ceiling, side by side: another checkout (``--before``) and this one, same run.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tagwerk_bench \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/6 make bench BENCH_ARGS="sending"
    # --size=6000 (default), --before=DIR (a checkout to compare with, e.g. a git
    # worktree of an earlier commit; none by default), --steady=N (also N sends at
    # 1,000 msg/s from this checkout alone)

Needs PostgreSQL and Redis (broker and token bucket on ``BENCH_REDIS_URL``, which is
flushed). Measures first the fake Cloud API's own ceiling (a load generator in another
process, 16 keep-alive connections, no rate limit), then, for each checkout, one
campaign of ``--size`` sends at a configured 80 msg/s, the same with 1 % of the
recipients refused once with 130429 (spread over the send), and one at 1,000 msg/s.
Each run: two Celery workers (thread pool, 4 each; 8 send slots) started from that
checkout, the fake server in this process enforcing the configured rate (130429 above
it in any 1-second window), beat's tick played every 2 s. Duplicates and losses are
counted at the fake server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.bench_campaigns import (
    CITY,
    REDIS,
    ROOT,
    TOKEN,
    Workers,
    _campaign,
    _drive,
    _outcome,
    _prepare,
)

TITLE = "Sending ceiling: before and after send runs, side by side at 80 and 1,000 msg/s"

# Posts template bodies as fast as it can over keep-alive connections; prints requests/s.
_LOAD = """
import sys, threading, time, httpx
url, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
counts = [0] * threads
body = {"messaging_product": "whatsapp", "to": "4917000000000", "type": "template",
        "template": {"name": "bench_update", "language": {"code": "de"}}}
def work(i):
    with httpx.Client(headers={"Authorization": "Bearer bench-token"}) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            client.post(url + "/v21.0/bench-number/messages", json=body)
            counts[i] += 1
pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
[t.start() for t in pool]; [t.join() for t in pool]
print(sum(counts) / seconds)
"""


def _ceiling(seconds: float = 8.0, threads: int = 16) -> float:
    from tests.campaigns.fake_cloud_api import FakeCloudAPI

    with FakeCloudAPI(token=TOKEN) as api:
        out = subprocess.run([sys.executable, "-c", _LOAD, api.url, str(seconds), str(threads)],
                             capture_output=True, text=True, check=True, timeout=seconds + 60)
    return float(out.stdout.strip().splitlines()[-1])


def _run(root: Path, rate: int, size: int, refuse_share: float = 0.0) -> dict:
    from campaigns.models import Send
    from tests.campaigns.fake_cloud_api import FakeCloudAPI

    with FakeCloudAPI(token=TOKEN, max_mps=rate) as api:
        workers = Workers(2, api.url, root=root)
        try:
            campaign, _snapshot, _snap_s = _campaign(f"Ceiling {rate}/s", 4, rate)
            if refuse_share:
                phones = list(Send.objects.filter(campaign=campaign).order_by("?")
                              .values_list("phone", flat=True)[:int(size * refuse_share)])
                for phone in phones:
                    api.inject(130429, to=phone)
            took = _drive(campaign, timeout=size / rate * 3 + 120)
        finally:
            workers.stop()
        result = _outcome(api, campaign)
    return {**result, "wall_s": took}


def _row(label: str, rate: int, r: dict) -> str:
    return (f"| {label} | {rate:,} | {r['recipients']:,} | {r['rate']:.0f} msg/s "
            f"({r['rate'] / rate * 100:.0f} %) | {r['per_second_median']:.0f} "
            f"({r['per_second_min']}–{r['per_second_max']}) | {r['max_window']} | "
            f"{r['refused_130429']} | {r['duplicates']} | {r['lost']} | {r['unsent']} | "
            f"{r['wall_s']:.0f} s |")


def run(argv: list[str]) -> str:
    from django.conf import settings

    from config.celery import app

    app.conf.broker_url = REDIS
    # This process plays beat: its reconciler must use the workers' grace period.
    settings.WHATSAPP_INFLIGHT_GRACE_SECONDS = 20
    size = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--size=")), 6000))
    steady = int(next((a.split("=", 1)[1] for a in argv if a.startswith("--steady=")), 0))
    before = next((a.split("=", 1)[1] for a in argv if a.startswith("--before=")), "")
    _prepare(size)
    load = [os.getloadavg()[0]]
    ceiling = _ceiling()
    load.append(os.getloadavg()[0])
    checkouts = [("before", Path(before))] if before else []
    checkouts.append(("this checkout", ROOT))
    rows = []
    for label, root in checkouts:
        for rate, share in ((80, 0.0), (80, 0.01), (1000, 0.0)):
            result = _run(root, rate, size, share)
            name = f"{label}{', 1 % refused once' if share else ''}"
            rows.append(_row(name, rate, result))
            load.append(os.getloadavg()[0])
            print(rows[-1], flush=True)
    if steady:  # a longer run, so that the start (loops fanning out) weighs less
        _prepare(steady)  # more contacts in the same cities: the audience grows to them
        rows.append(_row("this checkout, longer run", 1000, _run(ROOT, 1000, steady)))
        load.append(os.getloadavg()[0])
        print(rows[-1], flush=True)
    return "\n".join([
        f"## {TITLE}", "",
        "**Measured on a loaded machine**: 2 cores shared with up to seven other sessions "
        "running tests and benchmarks at the same time (1-minute load average "
        f"{min(load):.1f}–{max(load):.1f} during the run, sampled between runs). The figures "
        "compare the two checkouts under the same load; they are not the machine's ceiling.",
        "",
        f"Fake Cloud API's own ceiling (tests/campaigns/fake_cloud_api.py, no rate limit, a "
        f"load generator in another process over 16 keep-alive connections): "
        f"**{ceiling:.0f} requests/s**.", "",
        f"Each run: {size:,} recipients ({CITY} contacts), two Celery workers (thread pool, 4 "
        "threads each, 8 send slots) started from the checkout named, Redis broker and token "
        "bucket, PostgreSQL, the fake server enforcing the configured rate (130429 above it "
        "in any 1-second window), beat's tick played every 2 s. Achieved rate: accepted "
        "requests from the first to the last; duplicates and losses counted at the fake "
        "server.", "",
        "| checkout | configured msg/s | recipients | achieved | whole seconds: median "
        "(min–max) | most in any 1-s window | refused (130429) | duplicates | lost "
        "| unsent at time limit | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows, ""])
