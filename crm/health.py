"""Readiness checks: what a load balancer and an operator ask every few seconds.

Each app registers the checks of what it owns from its ``AppConfig.ready()``
(``register_check``); ``/readyz`` runs them all and answers 503 when one that
matters fails, ``/metrics`` exports their numbers as gauges. A check is cheap
(an indexed query, a ping with a short timeout) and never says a secret.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import PeriodicTask


@dataclass
class CheckResult:
    ok: bool
    detail: str = ""
    values: dict[str, float | None] = field(default_factory=dict)  # exported as gauges


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], CheckResult]
    critical: bool = True  # a failing critical check makes /readyz answer 503


_checks: dict[str, Check] = {}


def register_check(name: str, run: Callable[[], CheckResult], *, critical: bool = True) -> None:
    """Add (or replace) the check ``name``; ``run()`` returns a ``CheckResult``."""
    _checks[name] = Check(name, run, critical)


def checks() -> list[Check]:
    return list(_checks.values())


def checks_run() -> dict[str, dict]:
    """Every check's answer by name; a check that raises counts as failed, with its error."""
    answers = {}
    for check in checks():
        started = time.monotonic()
        try:
            result = check.run()
        except Exception as error:
            result = CheckResult(False, _unsecret(f"{type(error).__name__}: {error}"))
        answers[check.name] = {
            "ok": result.ok, "critical": check.critical, "detail": result.detail,
            "values": result.values, "ms": round((time.monotonic() - started) * 1000, 1),
        }
    return answers


_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


def _unsecret(text: str) -> str:
    """An error message without the credentials of a URL it may quote."""
    return _CREDENTIALS.sub(r"\1***@", text)


_answered: tuple[float, dict[str, dict]] | None = None


def checks_answers() -> dict[str, dict]:
    """``checks_run()``, kept for ``HEALTH_CACHE_SECONDS`` in this process.

    In the process, not in Redis: a readiness answer must not depend on the cache it
    checks, and a load balancer plus Prometheus asking every few seconds then cost a
    handful of cheap queries per process, whatever their rate.
    """
    global _answered
    seconds = settings.HEALTH_CACHE_SECONDS
    if seconds and _answered is not None and time.monotonic() - _answered[0] < seconds:
        return _answered[1]
    answers = checks_run()
    _answered = (time.monotonic(), answers) if seconds else None
    return answers


# --- checks of what every installation has -------------------------------------------


def database_check() -> CheckResult:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return CheckResult(True, connection.vendor)


@cache
def _redis(url: str) -> redis.Redis:
    """One client per URL and process: its pool keeps the connection between checks."""
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def cache_check() -> CheckResult:
    """Redis as cache and rate limiter, when ``REDIS_URL`` is set."""
    if not settings.REDIS_URL:
        return CheckResult(True, "no Redis configured (in-process cache)")
    _redis(settings.REDIS_URL).ping()
    return CheckResult(True, "redis")


QUEUES = ("celery", "webhooks", "jobs")


def broker_check() -> CheckResult:
    """The Celery broker answers; with Redis, how many tasks wait per queue."""
    url = settings.CELERY_BROKER_URL
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss"):
        # kombu keeps priority levels as extra lists beside the queue's own; one round
        # trip (a pipeline) asks for all of them.
        pipe = _redis(url).pipeline(transaction=False)
        for queue in QUEUES:
            for name in [queue, *(f"{queue}\x06\x16{p}" for p in range(1, 10))]:
                pipe.llen(name)
        lengths = pipe.execute()
        depths = {f"queue_{queue}": float(sum(lengths[i * 10:(i + 1) * 10]))
                  for i, queue in enumerate(QUEUES)}
        return CheckResult(True, "redis", depths)
    if scheme == "filesystem":
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
        return CheckResult(Path(folder).is_dir(), "filesystem",
                           {"queue_all": float(sum(1 for _ in Path(folder).glob("*.msg")))})
    with current_app.connection_for_read() as conn:  # amqp and the rest: ask kombu
        conn.ensure_connection(max_retries=1, timeout=1)
    return CheckResult(True, scheme)


def beat_check() -> CheckResult:
    """Beat ran a periodic task recently. It writes ``last_run_at`` every few minutes
    (django-celery-beat syncs every 3 minutes), so the limit is generous."""
    limit = timedelta(seconds=settings.HEALTH_BEAT_MAX_AGE_SECONDS)
    last = PeriodicTask.objects.filter(enabled=True).aggregate(at=Max("last_run_at"))["at"]
    age = None if last is None else (timezone.now() - last).total_seconds()
    if age is None:
        return CheckResult(False, "beat has not run any periodic task yet", {"age_seconds": None})
    return CheckResult(age <= limit.total_seconds(),
                       f"last periodic task {age:.0f} s ago (limit {limit.total_seconds():.0f} s)",
                       {"age_seconds": age})


def checks_register_defaults() -> None:
    register_check("database", database_check)
    register_check("cache", cache_check)
    register_check("broker", broker_check)
    register_check("beat", beat_check, critical=False)
