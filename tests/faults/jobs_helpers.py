"""Shared pieces of the job fault tests: a real worker killed with SIGKILL, beat's sweeper.

A worker is started as docs/operations.md starts one (prefork, ``--concurrency 2``), in a
process group of its own, so ``kill()`` takes the main process and its children at once,
as a crashed machine or the OOM killer would. Beat is played by the test: it publishes the
sweeper every TAGWERK_JOB_SWEEP_SECONDS, as beat does. Nothing else helps the job along.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import needs_postgresql, require_service
from tests.faults.webhooks_helpers import ROOT, database_url

_CONFIGURED = os.environ.get("CELERY_BROKER_URL", "")
BROKER = os.environ.get("TAGWERK_TEST_BROKER_URL") or (
    _CONFIGURED if _CONFIGURED.startswith("redis://") else "redis://127.0.0.1:6379/5")
RECOVERY_LIMIT = 60  # seconds from the kill to the job's end


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(BROKER, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def needs_services() -> None:
    needs_postgresql()
    require_service(redis_available(), f"Redis is not reachable at {BROKER}")


def routes(queue: str) -> dict:
    jobs = {"queue": f"{queue}-jobs"}
    return {"tagging.imports.tasks.*": jobs,
            "tagging.audiences.tasks.bulk_operation_run_task": jobs,
            "tagging.rules.tasks.rule_run_task": jobs}


@pytest.fixture
def broker_queue():
    """This process publishes to the test's own queues on the Redis broker."""
    from config.celery import app

    queue = f"faults-{uuid.uuid4().hex[:8]}"
    keys = ("broker_url", "task_always_eager", "task_default_queue", "task_routes",
            "broker_transport_options")
    saved = {k: app.conf[k] for k in keys}
    app.conf.update(broker_url=BROKER, task_always_eager=False, task_default_queue=queue,
                    task_routes=routes(queue), broker_transport_options={})
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield queue
    finally:
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None


class Worker:
    """One Celery worker (prefork, two processes), on the test's queues."""

    def __init__(self, queue: str, log: Path):
        self.log = log
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.faults.jobs_worker_settings",
                    "DEBUG": "1", "LOG_LEVEL": "WARNING", "DATABASE_URL": database_url(),
                    "CELERY_BROKER_URL": BROKER, "TAGWERK_FAULT_QUEUE": queue,
                    "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
        self.queues = f"{queue},{queue}-jobs"
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it; return the seconds it took to be ready."""
        started = time.monotonic()
        self.log.write_text("")
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "INFO",
                 "--concurrency", "2", "-Q", self.queues, "-n", f"jobs-{uuid.uuid4().hex[:6]}@%h",
                 "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        while " ready." not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() - started < 60, "the worker did not start"
            time.sleep(0.1)
        return time.monotonic() - started

    def kill(self) -> float:
        """SIGKILL to the whole worker (main process and pool); returns the moment."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return time.monotonic()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_for(condition, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def sweep_until(done, *, killed: float, kind: str, ref: int) -> tuple[bool, float | None]:
    """Publish the sweeper every TAGWERK_JOB_SWEEP_SECONDS (as beat does) until ``done()``
    or RECOVERY_LIMIT seconds after the kill.

    Returns (done, seconds from the kill until a second worker claimed the job, or None).
    """
    from crm.models import Job
    from crm.tasks import jobs_sweep_task

    started = killed
    deadline, last, resumed = started + RECOVERY_LIMIT, 0.0, None
    while time.monotonic() < deadline:
        if resumed is None and Job.objects.filter(kind=kind, ref=ref, attempts__gte=2).exists():
            resumed = time.monotonic() - started
        if done():
            return True, resumed
        if time.monotonic() - last >= settings.TAGWERK_JOB_SWEEP_SECONDS:
            jobs_sweep_task.apply_async(expires=settings.TAGWERK_JOB_SWEEP_SECONDS)
            last = time.monotonic()
        time.sleep(0.1)
    return done(), resumed
