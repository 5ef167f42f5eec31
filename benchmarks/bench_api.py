"""The REST API at 1,000,000 contacts: a contact lookup and a tag change, p95 over HTTP.

Runs gunicorn as docs/operations.md does (``gunicorn config.wsgi --workers 4``, DEBUG
off) against the benchmark dataset (``benchmarks/dataset.py``) and times, from a client
on the same machine, ``GET /api/v1/contacts/{phone}/`` for random contacts (the number
written nationally, ``0151 …``, so normalising it is part of the work) and ``POST
/api/v1/contacts/{phone}/tags/`` adding a tag to a random contact and removing it again
(each a real change with history). The goal (#18): p95 under 50 ms for both.

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench make bench BENCH_ARGS=api
    … BENCH_ARGS="api --contacts=200000 --requests=500 --clients=1"

``--clients`` requests run at once (threads; default 1, then 4). The tag changes of the
run are taken back (each add is followed by its remove) and their history rows deleted,
so the dataset stays as built.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from django.db import connection

from benchmarks.dataset import ensure_dataset, settle
from crm.models import ApiScope, ApiToken
from crm.tokens import api_token_create
from tagging.models import AssignmentHistory

TITLE = "API: contact lookup and tag change over HTTP at 1M contacts"
ROOT = Path(__file__).resolve().parent.parent
TOKEN_NAME = "bench-api"
TAG = "Bench Tag 060"  # a rare synthetic tag (~3% of contacts): most contacts gain it


def _option(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "0",
           "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "127.0.0.1",
           "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": os.environ["DATABASE_URL"],
           # The benchmark measures latency, not the rate limit.
           "TAGWERK_API_RATE_PER_MINUTE": "100000000", "TAGWERK_API_BURST": "100000"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2).is_success:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"gunicorn stopped: {process.stderr.read().decode()[-2000:]}")
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("gunicorn did not answer within 60 s")


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def _percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cut[49] * 1000, "p95": cut[94] * 1000, "p99": cut[98] * 1000,
            "max": ordered[-1] * 1000}


def _national(index: int) -> str:
    return f"0151 {index:08d}"  # the dataset's +49151… numbers, as a German would write them


def _measure(base: str, token: str, contacts: int, requests: int, clients: int
             ) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)
    picks = [rng.randint(2, contacts) for _ in range(requests)]
    local = threading.local()

    def http() -> httpx.Client:
        # One client per thread: making a client builds an SSL context (~20 ms), which is
        # the client's cost, not the server's.
        if not hasattr(local, "client"):
            local.client = httpx.Client(headers=headers, timeout=30)
        return local.client

    def lookup(index: int) -> float:
        started = time.perf_counter()
        response = http().get(f"{base}/api/v1/contacts/{_national(index)}/")
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text[:300]
        return elapsed

    def change(index: int) -> tuple[float, float]:
        url = f"{base}/api/v1/contacts/{_national(index)}/tags/"
        timed = []
        for body in ({"add": [TAG]}, {"remove": [TAG]}):
            started = time.perf_counter()
            response = http().post(url, json=body)
            timed.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:300]
        return timed[0], timed[1]

    for index in picks[:20]:  # warm every worker's connection and caches
        lookup(index)
    with ThreadPoolExecutor(clients) as pool:
        lookups = list(pool.map(lookup, picks))
        # Distinct contacts per change, so that two clients never change the same one.
        changes = list(pool.map(change, rng.sample(range(2, contacts + 1), requests // 2)))
    return {"lookup": lookups, "add": [a for a, _r in changes], "remove": [r for _a, r in changes]}


def run(argv: list[str]) -> str:
    contacts = _option(argv, "contacts", 1_000_000)
    requests = _option(argv, "requests", 1000)
    workers = _option(argv, "workers", 4)
    client_counts = [_option(argv, "clients", 0)] if _option(argv, "clients", 0) else [1, 4]
    sizes = ensure_dataset(contacts)
    settle()
    ApiToken.objects.filter(name=TOKEN_NAME).delete()
    _token, raw = api_token_create(name=TOKEN_NAME, scopes=[ApiScope.CONTACTS_READ,
                                                           ApiScope.TAGS_WRITE],
                                   all_dimensions=True)
    connection.close()  # the server's workers get the database to themselves
    port = _free_port()
    server = _start_gunicorn(port, workers)
    rows = []
    try:
        for clients in client_counts:
            timed = _measure(f"http://127.0.0.1:{port}", raw, contacts, requests, clients)
            for label, key in (("contact lookup `GET /contacts/{phone}/`", "lookup"),
                               ("tag change: add `POST /contacts/{phone}/tags/`", "add"),
                               ("tag change: remove (same endpoint)", "remove")):
                p = _percentiles(timed[key])
                verdict = "✓" if p["p95"] < 50 else "✗"
                rows.append(f"| {label} | {clients} | {len(timed[key]):,} | {p['p50']:.1f} | "
                            f"**{p['p95']:.1f}** {verdict} | {p['p99']:.1f} | {p['max']:.1f} |")
    finally:
        _stop(server)
        AssignmentHistory.objects.filter(source_ref=f"api:{TOKEN_NAME}").delete()
        ApiToken.objects.filter(name=TOKEN_NAME).delete()
    return "\n".join([
        f"## {TITLE}",
        "",
        f"Dataset: {sizes['contacts']:,} contacts, {sizes['assignments']:,} assignments. "
        f"`gunicorn config.wsgi --workers {workers}` (DEBUG off) on this machine, client on "
        "loopback (a new connection per request, as gunicorn's sync workers close them). "
        "Numbers written nationally (`0151 …`). Goal: p95 < 50 ms.",
        "",
        "| request | clients at once | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])
