"""Queueing work for a worker, shared by every app.

Services enqueue Celery tasks by name: an app's ``tasks`` module imports its
services, so a service importing ``tasks`` back would close a circle (the
name is the contract, as with a message queue). Each app imports its
``tasks`` in ``AppConfig.ready()``, so the name is registered in every process.

An unreachable broker never fails the request or admin action that queued the
work: the work is recorded in the database first, and beat's periodic tasks
(the campaign tick, the job sweeper, the dashboard refresh) queue it again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnreachable

from crm.models import Job, JobStatus

logger = logging.getLogger(__name__)


def enqueue(task: str, *args, **kwargs) -> None:
    """Queue the task registered as ``task`` once the current transaction commits.

    Outside a transaction it is queued at once. Honours ``task_always_eager``
    (tests), unlike ``send_task``. Publishing happens inside ``on_commit``, where a
    caller's ``try`` no longer reaches, so the broker error is handled here.
    """
    transaction.on_commit(partial(_publish, task, args, kwargs))


def _publish(task: str, args: tuple, kwargs: dict) -> None:
    try:
        current_app.tasks[task].apply_async(args, kwargs)
    except BrokerUnreachable as exc:
        logger.warning("%s not queued; beat will queue it again (broker unreachable: %s)",
                       task, exc)


# --- Long jobs: a claim, a heartbeat, a sweeper ---------------------------------------------
#
# A long job (an import, a bulk tag operation, a rule run) works in slices, each committed
# with its cursor. Its worker holds a claim on the job's ``crm.Job`` row and renews the
# heartbeat after every slice. A worker killed with SIGKILL renews nothing: the sweeper
# (beat, every TAGWERK_JOB_SWEEP_SECONDS) finds the silent job and queues it again; the
# next worker claims it and continues from the cursor. After TAGWERK_JOB_MAX_ATTEMPTS
# claims the job is failed with the kind's own sentence. A redelivered or duplicated
# message finds the job held by a live worker, or finished, and does nothing.


class JobLost(RuntimeError):
    """Another worker took this job over (this one was silent too long): stop, roll back."""


@dataclass(frozen=True)
class JobKind:
    """How to resume and how to give up a kind of job.

    ``task``: the registered task name, called with the job's ``ref`` to start or resume
    it. ``give_up(ref, attempts)``: records on the job's own record that it failed, in
    a sentence for the person waiting for it.
    """

    name: str
    task: str
    give_up: Callable[[int, int], None]


_KINDS: dict[str, JobKind] = {}


def register_job_kind(name: str, *, task: str, give_up: Callable[[int, int], None]) -> None:
    """Called from an app's ``AppConfig.ready()``: crm never imports the apps above it."""
    _KINDS[name] = JobKind(name, task, give_up)


def _stale_cutoff(now):
    return now - timedelta(seconds=settings.TAGWERK_JOB_STALE_SECONDS)


def job_queue(kind: str, ref: int, *args) -> None:
    """Record the job as waiting and queue its task after commit.

    When the broker is down (or the message is lost), the sweeper queues it again.
    """
    now = timezone.now()
    Job.objects.update_or_create(kind=kind, ref=ref, defaults={
        "status": JobStatus.QUEUED, "heartbeat_at": now, "attempts": 0, "holder": "",
        "message": "", "finished_at": None, "args": list(args)}, create_defaults={
        "status": JobStatus.QUEUED, "heartbeat_at": now, "created_at": now, "args": list(args)})
    enqueue(_KINDS[kind].task, ref, *args)


@dataclass
class Claim:
    """This worker's hold on a job; ``beat()`` after every committed slice."""

    kind: str
    ref: int
    token: str
    attempt: int
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def beat(self) -> None:
        """Renew the heartbeat; raise ``JobLost`` when another worker took the job over.

        Called inside a slice's transaction, a lost job rolls the slice back.
        """
        held = Job.objects.filter(kind=self.kind, ref=self.ref, holder=self.token,
                                  status=JobStatus.RUNNING).update(heartbeat_at=timezone.now())
        if not held:
            raise JobLost(f"{self.kind} #{self.ref} was taken over by another worker")

    def _finish(self, status: str, message: str = "") -> None:
        self._stop.set()
        Job.objects.filter(kind=self.kind, ref=self.ref, holder=self.token).update(
            status=status, finished_at=timezone.now(), message=message[:2000])


def job_claim(kind: str, ref: int) -> Claim | None:
    """Take the job unless a live worker holds it; ``None``: leave it alone.

    A job silent for longer than TAGWERK_JOB_STALE_SECONDS is taken over (its worker
    died). One that has been taken over TAGWERK_JOB_MAX_ATTEMPTS times is given up.
    """
    now = timezone.now()
    Job.objects.get_or_create(kind=kind, ref=ref, defaults={"heartbeat_at": now})
    token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:200]
    taken = Job.objects.filter(kind=kind, ref=ref).filter(
        ~Q(status=JobStatus.RUNNING) | Q(heartbeat_at__lt=_stale_cutoff(now),
                                         attempts__lt=settings.TAGWERK_JOB_MAX_ATTEMPTS),
    ).update(status=JobStatus.RUNNING, holder=token, heartbeat_at=now, finished_at=None,
             message="", attempts=Case(  # a finished job run again (a rule) starts afresh
                 When(status__in=[JobStatus.DONE, JobStatus.FAILED], then=Value(1)),
                 default=F("attempts") + 1))
    if not taken:
        _give_up_stale(Job.objects.filter(kind=kind, ref=ref), now)
        return None
    attempt = Job.objects.filter(kind=kind, ref=ref).values_list("attempts", flat=True)[0]
    return Claim(kind, ref, token, attempt)


@contextmanager
def job_running(kind: str, ref: int):
    """Claim the job for the ``with`` block: yields the ``Claim``, or ``None`` when a live
    worker holds it. Leaving the block marks it done; an error marks it failed (the job's
    own record says why), except ``JobLost``: the job belongs to another worker now.

    On PostgreSQL, outside a transaction, a thread also renews the heartbeat every few
    seconds, so one slow statement never looks like a dead worker.
    """
    claim = job_claim(kind, ref)
    if claim is None:
        yield None
        return
    thread = None
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        thread = threading.Thread(target=_keep_beating, args=(claim,), daemon=True,
                                  name=f"job-heartbeat-{kind}-{ref}")
        thread.start()
    try:
        yield claim
    except JobLost:
        claim._stop.set()
        logger.warning("%s #%s was taken over by another worker; this one stops", kind, ref)
    except BaseException as exc:
        claim._finish(JobStatus.FAILED, f"{exc.__class__.__name__}: {exc}")
        raise
    else:
        claim._finish(JobStatus.DONE)
    finally:
        claim._stop.set()
        if thread is not None:
            thread.join(timeout=5)


def _keep_beating(claim: Claim) -> None:
    interval = max(settings.TAGWERK_JOB_STALE_SECONDS / 3, 1)
    try:
        while not claim._stop.wait(interval):
            try:
                claim.beat()
            except JobLost:
                return
            except DatabaseError as exc:  # the slices beat too; a missed beat is no failure
                logger.warning("heartbeat of %s #%s not written: %s", claim.kind, claim.ref, exc)
    finally:
        connection.close()


def jobs_sweep(*, now=None) -> dict[str, int]:
    """Queue again every job whose worker fell silent or whose message never arrived; give
    up those taken over too often. Returns counts (``requeued``, ``failed``).

    Run by beat every TAGWERK_JOB_SWEEP_SECONDS. Safe to repeat: a job queued twice runs
    once (the claim), and a slice run twice changes nothing more (the cursor and
    set-based, idempotent writes of each kind).
    """
    now = now or timezone.now()
    silent = Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
                                heartbeat_at__lt=_stale_cutoff(now))
    failed = _give_up_stale(silent, now)
    requeued = 0
    for job in silent.filter(attempts__lt=settings.TAGWERK_JOB_MAX_ATTEMPTS).order_by("pk"):
        kind = _KINDS.get(job.kind)
        if kind is None:
            continue  # its app is not installed in this process
        # Waiting again from now: the next sweep leaves it alone for a while, and a
        # worker that was only slow finds its claim gone at its next beat.
        if Job.objects.filter(pk=job.pk, status=job.status,
                              heartbeat_at=job.heartbeat_at).update(
                status=JobStatus.QUEUED, heartbeat_at=now):
            logger.warning("%s #%s: no sign of life since %s (%s); queued again",
                           job.kind, job.ref, job.heartbeat_at.isoformat(), job.status)
            enqueue(kind.task, job.ref, *job.args)
            requeued += 1
    return {"requeued": requeued, "failed": failed}


def _give_up_stale(jobs, now) -> int:
    """Fail the silent running jobs among ``jobs`` that used up their attempts."""
    failed = 0
    for job in jobs.filter(status=JobStatus.RUNNING, heartbeat_at__lt=_stale_cutoff(now),
                           attempts__gte=settings.TAGWERK_JOB_MAX_ATTEMPTS):
        if not Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING,
                                  heartbeat_at=job.heartbeat_at).update(
                status=JobStatus.FAILED, finished_at=now,
                message=f"gave up after {job.attempts} attempts"):
            continue
        kind = _KINDS.get(job.kind)
        if kind is not None:
            kind.give_up(job.ref, job.attempts)
        logger.error("%s #%s: its worker stopped %d times; given up", job.kind, job.ref,
                     job.attempts)
        failed += 1
    return failed
