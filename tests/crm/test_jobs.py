"""Long jobs and their claims (crm.jobs): a worker that dies is replaced by the sweeper,
a duplicate message does nothing, a job that keeps killing its worker is failed clearly.

The kill is played in-process: ``_Died`` is a ``BaseException`` no service catches, and
the job's heartbeat is aged as time would age it. tests/faults/test_jobs_*.py kill real
workers with SIGKILL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

import tagging.audiences.services as bulk_services
from crm.jobs import JobLost, job_claim, job_queue, jobs_sweep
from crm.models import Job, JobStatus
from tagging.audiences.models import BulkOperation, BulkStatus
from tagging.audiences.services import BULK_JOB, bulk_operation_run, bulk_operation_start
from tagging.audiences.tasks import bulk_operation_run_task
from tagging.models import AssignmentHistory, TagAssignment

pytestmark = pytest.mark.django_db


class _Died(BaseException):
    """SIGKILL: nothing after it runs, no ``except Exception`` sees it."""


@pytest.fixture
def bulk(make_contact, make_tag, superuser, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(bulk_services, "SLICE_SIZE", 2)
    contacts = [make_contact() for _ in range(7)]
    tag = make_tag()
    # Recorded and queued, but the queued message is lost (nothing runs it yet).
    with django_capture_on_commit_callbacks(execute=False):
        return bulk_operation_start(contacts=[c.pk for c in contacts], add=[tag],
                                    actor=superuser, background=True)


def die_at_slice(monkeypatch, n: int) -> None:
    """Each run of the job dies at its ``n``-th slice."""
    calls: list[int] = []
    change = bulk_services.tags_change

    def dying(**kwargs):
        calls.append(1)
        if len(calls) % n == 0:
            raise _Died
        return change(**kwargs)

    monkeypatch.setattr(bulk_services, "tags_change", dying)


def silence(seconds: int = 60) -> None:
    """Time passes with no heartbeat."""
    Job.objects.update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def test_a_killed_bulk_operation_is_resumed_by_the_sweeper_and_counts_the_whole_job(
        bulk, monkeypatch, django_capture_on_commit_callbacks):
    claim = job_claim(BULK_JOB, bulk.pk)
    die_at_slice(monkeypatch, 3)
    with pytest.raises(_Died):
        bulk_operation_run(bulk_id=bulk.pk, claim=claim)
    assert BulkOperation.objects.get(pk=bulk.pk).processed == 4  # two slices committed
    monkeypatch.undo()
    monkeypatch.setattr(bulk_services, "SLICE_SIZE", 2)

    assert jobs_sweep() == {"requeued": 0, "failed": 0}  # still within its lease
    silence()
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_sweep() == {"requeued": 1, "failed": 0}

    bulk.refresh_from_db()
    assert (bulk.status, bulk.processed, bulk.added) == (BulkStatus.DONE, 7, 7)
    assert TagAssignment.objects.count() == 7
    assert AssignmentHistory.objects.filter(operation=bulk.operation).count() == 7
    job = Job.objects.get(kind=BULK_JOB, ref=bulk.pk)
    assert (job.status, job.attempts) == (JobStatus.DONE, 2)


def test_a_message_never_delivered_is_queued_again(bulk, django_capture_on_commit_callbacks):
    assert Job.objects.get(kind=BULK_JOB, ref=bulk.pk).status == JobStatus.QUEUED
    silence()
    with django_capture_on_commit_callbacks(execute=True):
        jobs_sweep()
    assert BulkOperation.objects.get(pk=bulk.pk).status == BulkStatus.DONE


def test_a_duplicate_message_leaves_a_job_a_live_worker_holds_alone(bulk):
    assert job_claim(BULK_JOB, bulk.pk) is not None

    bulk_operation_run_task(bulk.pk)  # redelivered while the first worker runs it

    bulk.refresh_from_db()
    assert (bulk.status, bulk.processed, TagAssignment.objects.count()) == (
        BulkStatus.PENDING, 0, 0)


def test_a_worker_that_lost_its_job_rolls_its_slice_back(bulk):
    claim = job_claim(BULK_JOB, bulk.pk)
    silence()
    jobs_sweep_without_running = job_claim(BULK_JOB, bulk.pk)  # another worker took over
    assert jobs_sweep_without_running is not None

    with pytest.raises(JobLost):
        bulk_operation_run(bulk_id=bulk.pk, claim=claim)

    assert BulkOperation.objects.get(pk=bulk.pk).processed == 0
    assert TagAssignment.objects.count() == 0


def test_a_job_that_keeps_killing_its_worker_is_failed_with_a_sentence(
        bulk, monkeypatch, settings):
    settings.TAGWERK_JOB_MAX_ATTEMPTS = 2
    die_at_slice(monkeypatch, 2)
    for _attempt in range(2):
        claim = job_claim(BULK_JOB, bulk.pk)
        assert claim is not None
        with pytest.raises(_Died):
            bulk_operation_run(bulk_id=bulk.pk, claim=claim)
        silence()

    assert jobs_sweep() == {"requeued": 0, "failed": 1}

    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.FAILED
    assert "stopped 2 times, after 4 of 7 contacts" in bulk.error
    assert bulk.added == 4  # what was done is counted, and undo takes it back
    assert Job.objects.get(kind=BULK_JOB, ref=bulk.pk).status == JobStatus.FAILED
    assert job_claim(BULK_JOB, bulk.pk) is not None  # a new try may claim it again
    bulk_operation_run_task(bulk.pk)
    assert BulkOperation.objects.get(pk=bulk.pk).status == BulkStatus.FAILED  # stays failed


def test_queueing_again_resets_the_attempts(bulk):
    Job.objects.filter(kind=BULK_JOB, ref=bulk.pk).update(attempts=3, status=JobStatus.FAILED)
    job_queue(BULK_JOB, bulk.pk)
    job = Job.objects.get(kind=BULK_JOB, ref=bulk.pk)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)


def test_a_job_run_again_after_it_finished_starts_its_attempts_afresh(bulk, settings):
    settings.TAGWERK_JOB_MAX_ATTEMPTS = 2
    for _run in range(3):  # a rule's job row serves every scheduled run
        claim = job_claim(BULK_JOB, bulk.pk)
        assert claim is not None and claim.attempt == 1
        claim._finish(JobStatus.DONE)
