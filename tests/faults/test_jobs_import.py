"""kill -9 of the worker in the middle of a 40,000-row import: a new worker continues it
after its last committed batch within 60 s, and the report counts the file exactly as an
uninterrupted run does (nothing imported twice, nothing missing)."""

from __future__ import annotations

import time

import pytest

from crm.jobs import job_queue
from crm.models import ConsentStatus, Contact, Job, JobStatus
from tagging.imports.models import ConsentBasis, ImportedContact, ImportJob, ImportStatus
from tagging.imports.services import IMPORT_JOB, import_create
from tagging.models import AssignmentHistory, TagAssignment
from tests.factories import TagFactory
from tests.faults.jobs_helpers import (
    RECOVERY_LIMIT,
    Worker,
    broker_queue,  # noqa: F401  (fixture)
    needs_services,
    sweep_until,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROWS = 40_000


def write_file(path, tag: str) -> dict:
    """A file of ``ROWS`` rows: every 100th number invalid, every 250th a repeat of the
    row before; returns what an uninterrupted import reports."""
    lines, invalid, repeats = ["phone,name,tags"], 0, 0
    for i in range(ROWS):
        if i % 100 == 99:
            lines.append(f"12345,Invalid {i},{tag}")
            invalid += 1
        elif i % 250 == 1:
            lines.append(lines[-1])
            repeats += 1
        else:
            lines.append(f"+49151{30000000 + i:08d},Kunde {i},{tag}")
    path.write_text("\n".join(lines) + "\n")
    good = ROWS - invalid - repeats
    return {"rows": ROWS, "created": good, "failed": invalid + repeats, "tags_added": good}


def test_a_worker_killed_mid_import_is_replaced_and_the_import_completes(
        broker_queue, tmp_path):  # noqa: F811
    needs_services()
    tag = TagFactory(name="Messe 2026")
    expected = write_file(tmp_path / "list.csv", tag.name)
    job = import_create(path=tmp_path / "list.csv", consent_basis=ConsentBasis.UNKNOWN)
    worker = Worker(broker_queue, tmp_path / "worker.log")
    try:
        worker.start()
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED)
        job_queue(IMPORT_JOB, job.pk)  # as the admin's confirm button does
        assert wait_for(lambda: ImportJob.objects.get(pk=job.pk).rows >= 10_000, 60), \
            "the import did not start"
        killed = worker.kill()
        at_kill = ImportJob.objects.get(pk=job.pk)
        restart = worker.start()  # as a supervisor restarts it
        done, resumed = sweep_until(
            lambda: ImportJob.objects.get(pk=job.pk).status in (ImportStatus.DONE,
                                                                ImportStatus.FAILED),
            killed=killed, kind=IMPORT_JOB, ref=job.pk)
        recovery = time.monotonic() - killed
        # The claim is let go just after the job's own status is written: wait for it
        # before stopping the worker.
        wait_for(lambda: Job.objects.get(kind=IMPORT_JOB, ref=job.pk).status == JobStatus.DONE, 15)
    finally:
        worker.stop()

    assert at_kill.status == ImportStatus.RUNNING and at_kill.rows < ROWS, \
        "the worker was not killed mid-import"
    job.refresh_from_db()
    assert done, f"not finished within {RECOVERY_LIMIT} s of the kill: {job.status} {job.rows}"
    assert job.status == ImportStatus.DONE, job.message
    report = {k: job.report[k] for k in expected}
    assert report == expected  # the whole file, counted once
    assert (job.rows, job.created, job.failed, job.tags_added) == tuple(expected.values())
    assert Contact.objects.count() == expected["created"]
    assert ImportedContact.objects.filter(job=job).count() == expected["created"]
    assert TagAssignment.objects.filter(tag=tag).count() == expected["created"]
    assert AssignmentHistory.objects.filter(operation=job.operation).count() == \
        expected["created"]
    assert not Contact.objects.exclude(consent_status=ConsentStatus.UNKNOWN).exists()
    failed_rows = job.failed_rows.open("rb").read().decode("utf-8-sig").splitlines()
    assert len(failed_rows) == 1 + expected["failed"]  # each failure listed once
    claim = Job.objects.get(kind=IMPORT_JOB, ref=job.pk)
    assert claim.status == JobStatus.DONE and claim.attempts >= 2
    print(f"\nkill -9 after {at_kill.rows} of {ROWS} rows; worker back in {restart:.1f} s; "
          f"resumed {resumed:.1f} s and done {recovery:.1f} s after the kill; "
          f"report equals an uninterrupted run")
