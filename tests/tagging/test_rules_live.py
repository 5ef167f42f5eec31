"""Rules against real services: concurrent runs on PostgreSQL, and a real Celery worker.

Both need a database that a second connection (thread or process) sees
committed, so they are transactional tests; they run in the PostgreSQL pass
(``DATABASE_URL=postgres://…``) and skip on SQLite, whose test database lives
in memory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection, connections

from tagging.models import AssignmentHistory, TagAssignment
from tagging.rules.models import Rule, RuleRun, RuleTrigger
from tagging.rules.services import rule_run, rule_save
from tests.conftest import needs_postgresql, require_service
from tests.factories import ContactFactory, TagFactory

ROOT = Path(__file__).resolve().parents[2]
# The broker CI configures when it is Redis (the app under test already talks to it),
# else a Redis database of its own; each test uses a queue of its own on it.
_CONFIGURED = os.environ.get("CELERY_BROKER_URL", "")
BROKER = os.environ.get("TAGWERK_TEST_BROKER_URL") or (
    _CONFIGURED if _CONFIGURED.startswith("redis://") else "redis://127.0.0.1:6379/5")



def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_change_nothing_twice():
    needs_postgresql("needs a database shared between connections")
    tag = TagFactory(name="Hochwertig")
    ContactFactory.create_batch(300, purchase_count=5)
    rule = rule_save(rule=Rule(name="Buyers", segment="purchases > 3"), add_tags=[tag])
    barrier, outcomes = threading.Barrier(2), []

    def run():
        try:
            barrier.wait()
            outcomes.append(rule_run(rule=Rule.objects.get(pk=rule.pk)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(o.added for o in outcomes) == [0, 300]
    assert TagAssignment.objects.filter(tag=tag).count() == 300
    assert AssignmentHistory.objects.filter(tag=tag).count() == 300
    assert RuleRun.objects.count() == 2


def _reset_connections(app) -> None:
    """Make the in-process app connect afresh to the (changed) broker URL."""
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def live_worker(queue: str, *, default_queue: bool, env: dict | None = None):
    """A real Celery worker in a subprocess consuming ``queue`` of the test broker, seeing
    the test database; with ``default_queue`` this process's tasks go to that queue too."""
    needs_postgresql("needs a database shared between connections")
    require_service(redis_available(), f"Redis is not reachable at {BROKER}")
    from config.celery import app

    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "1",
           "CELERY_BROKER_URL": BROKER, "LOG_LEVEL": "WARNING", **(env or {}),
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "-Q", queue,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=BROKER, task_always_eager=False,
                    **({"task_default_queue": queue} if default_queue else {}))
    _reset_connections(app)
    try:
        deadline = time.monotonic() + 20
        for line in process.stdout:
            if " ready." in line or time.monotonic() > deadline:
                break
        assert process.poll() is None, "the worker did not start"
        yield process
    finally:
        app.conf.update(saved)
        _reset_connections(app)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def worker(settings):
    """A real Celery worker in a subprocess, on its own queue, seeing the test database."""
    with live_worker(f"rules-test-{uuid.uuid4().hex[:8]}", default_queue=True) as process:
        yield process


@pytest.mark.django_db(transaction=True)
def test_event_to_tag_in_under_five_seconds_with_a_real_worker(worker, client):
    from crm.tokens import api_token_create

    tag = TagFactory(name="Warenkorbabbruch")
    rule_save(rule=Rule(name="Cart", trigger=RuleTrigger.EVENT, event_kind="cart_abandoned"),
              add_tags=[tag])
    token = api_token_create(name="Shop")[1]
    started = time.monotonic()
    response = client.post("/api/events/", {"type": "cart_abandoned", "phone": "+4915123999001"},
                           content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201
    while time.monotonic() - started < 5:
        if TagAssignment.objects.filter(tag=tag, contact__phone="+4915123999001").exists():
            break
        time.sleep(0.05)
    latency = time.monotonic() - started
    assert latency < 5, "the tag did not appear within 5 s"
    # The run's log entry is written just after the tag, in its own transaction.
    while not RuleRun.objects.exists() and time.monotonic() - started < 10:
        time.sleep(0.05)
    assert RuleRun.objects.get().trigger == "event"
    print(f"event → tag latency: {latency * 1000:.0f} ms")
