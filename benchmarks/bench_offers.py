"""Offer eligibility over HTTP at 1,000,000 contacts: what a shop asks before a sale.

Runs gunicorn as the API benchmark does (``benchmarks/bench_api.py``) against the benchmark
dataset and times ``GET /api/v1/offers/{slug}/eligibility/?phone=…`` and ``GET
/api/v1/contacts/{phone}/offers/`` for random contacts, numbers written nationally. The
audience is answered from the in-memory index, built in each gunicorn worker by the warm-up
requests. Goal (#17): p95 under 20 ms.

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench make bench BENCH_ARGS=offers
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.db import connection

from benchmarks.bench_api import (
    _free_port,
    _national,
    _option,
    _percentiles,
    _start_gunicorn,
    _stop,
)
from benchmarks.dataset import ensure_dataset, settle
from crm.models import ApiScope, ApiToken
from crm.tokens import api_token_create
from tagging.offers.models import Offer
from tagging.offers.services import offer_create

TITLE = "Offers: eligibility over HTTP at 1M contacts"
TOKEN_NAME, SLUG = "bench-offers", "bench-vip"
AUDIENCE = '("VIP" OR "SVIP") AND NOT "Drohender Abwanderer"'


def _measure(base: str, token: str, contacts: int, requests: int, clients: int
             ) -> dict[str, list[float]]:
    local = threading.local()
    rng = random.Random(11)
    picks = [rng.randint(2, contacts) for _ in range(requests)]
    eligible = []

    def http() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(headers={"Authorization": f"Bearer {token}"},
                                        timeout=60)
        return local.client

    def timed(url: str) -> tuple[float, dict]:
        started = time.perf_counter()
        response = http().get(url)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text[:300]
        return elapsed, response.json()

    def eligibility(index: int) -> float:
        elapsed, body = timed(f"{base}/api/v1/offers/{SLUG}/eligibility/?phone={_national(index)}")
        eligible.append(body["eligible"])
        return elapsed

    def offers(index: int) -> float:
        return timed(f"{base}/api/v1/contacts/{_national(index)}/offers/")[0]

    with ThreadPoolExecutor(clients) as pool:  # warm: every worker builds its index
        list(pool.map(eligibility, picks[:40]))
    eligible.clear()
    with ThreadPoolExecutor(clients) as pool:
        checks = list(pool.map(eligibility, picks))
        lists = list(pool.map(offers, picks))
    return {"eligibility": checks, "offers": lists, "eligible": [sum(eligible)]}


def run(argv: list[str]) -> str:
    contacts = _option(argv, "contacts", 1_000_000)
    requests = _option(argv, "requests", 1000)
    workers = _option(argv, "workers", 2)
    sizes = ensure_dataset(contacts)
    settle()
    Offer.objects.filter(slug=SLUG).delete()
    offer_create(name="Bench VIP offer", slug=SLUG, audience=AUDIENCE, code="BENCH")
    ApiToken.objects.filter(name=TOKEN_NAME).delete()
    _token, raw = api_token_create(name=TOKEN_NAME, scopes=[ApiScope.OFFERS_READ])
    connection.close()
    port = _free_port()
    server = _start_gunicorn(port, workers)
    rows = []
    try:
        timed = _measure(f"http://127.0.0.1:{port}", raw, contacts, requests, 1)
        for label, key in (("eligibility `GET /offers/{slug}/eligibility/?phone=`",
                            "eligibility"),
                           ("a contact's offers `GET /contacts/{phone}/offers/`", "offers")):
            p = _percentiles(timed[key])
            verdict = "✓" if p["p95"] < 20 else "✗"
            rows.append(f"| {label} | {len(timed[key]):,} | {p['p50']:.1f} | "
                        f"**{p['p95']:.1f}** {verdict} | {p['p99']:.1f} | {p['max']:.1f} |")
    finally:
        _stop(server)
        ApiToken.objects.filter(name=TOKEN_NAME).delete()
        Offer.objects.filter(slug=SLUG).delete()
    return "\n".join([
        f"## {TITLE}",
        "",
        f"Dataset: {sizes['contacts']:,} contacts, {sizes['assignments']:,} assignments. "
        f"`gunicorn config.wsgi --workers {workers}` (DEBUG off), one client on loopback; "
        f"audience `{AUDIENCE}`; {timed['eligible'][0]:,} of {requests:,} random contacts "
        "eligible. Numbers written nationally (`0151 …`). Goal: p95 < 20 ms.",
        "",
        "| request | requests | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ])
