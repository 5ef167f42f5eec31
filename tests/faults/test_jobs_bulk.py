"""kill -9 of the worker in the middle of a "Manage tags" operation on 60,000 contacts: a
new worker continues after the last committed slice within 60 s; every contact ends with
the change made once, and the report counts the whole operation, not only the part after
the kill."""

from __future__ import annotations

import time

import pytest

from crm.models import ConsentStatus, Job, JobStatus
from crm.services import contacts_insert
from tagging.audiences.models import BulkOperation, BulkStatus
from tagging.audiences.services import BULK_JOB, bulk_operation_start
from tagging.models import AssignmentHistory, TagAssignment
from tagging.services import tags_change
from tests.factories import TagFactory, UserFactory
from tests.faults.jobs_helpers import (
    Worker,
    broker_queue,  # noqa: F401  (fixture)
    needs_services,
    sweep_until,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CONTACTS = 60_000


def test_a_worker_killed_mid_bulk_operation_is_replaced_and_the_report_counts_it_all(
        broker_queue, tmp_path):  # noqa: F811
    needs_services()
    ids = list(contacts_insert(rows=[
        {"phone": f"+49152{40000000 + i:08d}", "country": "DE",
         "consent_status": ConsentStatus.OPTED_IN} for i in range(CONTACTS)]).values())
    new, old = TagFactory(name="Hohes Potenzial"), TagFactory(name="Inaktiv")
    tags_change(contacts=ids[::2], add=[old])  # half of them hold the tag to remove
    actor = UserFactory(is_superuser=True, is_staff=True)
    worker = Worker(broker_queue, tmp_path / "worker.log")
    try:
        worker.start()
        bulk = bulk_operation_start(contacts=ids, add=[new], remove=[old], actor=actor,
                                    background=True)
        assert wait_for(lambda: BulkOperation.objects.get(pk=bulk.pk).processed >= 5_000, 60), \
            "the operation did not start"
        killed = worker.kill()
        at_kill = BulkOperation.objects.get(pk=bulk.pk)
        restart = worker.start()
        done, resumed = sweep_until(
            lambda: BulkOperation.objects.get(pk=bulk.pk).status in (BulkStatus.DONE,
                                                                     BulkStatus.FAILED),
            killed=killed, kind=BULK_JOB, ref=bulk.pk)
        recovery = time.monotonic() - killed
        # The claim is let go just after the job's own status is written: wait for it
        # before stopping the worker.
        wait_for(lambda: Job.objects.get(kind=BULK_JOB, ref=bulk.pk).status == JobStatus.DONE, 15)
    finally:
        worker.stop()

    assert at_kill.status == BulkStatus.RUNNING and at_kill.processed < CONTACTS, \
        "the worker was not killed mid-operation"
    bulk.refresh_from_db()
    assert done, f"not finished within 60 s of the kill: {bulk.status} {bulk.processed}"
    assert bulk.status == BulkStatus.DONE, bulk.error
    # The report of an uninterrupted run: everyone gained the tag, half lost the other.
    assert (bulk.processed, bulk.added, bulk.removed) == (CONTACTS, CONTACTS, CONTACTS // 2)
    assert TagAssignment.objects.filter(tag=new).count() == CONTACTS
    assert not TagAssignment.objects.filter(tag=old).exists()
    history = AssignmentHistory.objects.filter(operation=bulk.operation)
    assert history.count() == CONTACTS + CONTACTS // 2  # each change logged once
    claim = Job.objects.get(kind=BULK_JOB, ref=bulk.pk)
    assert claim.status == JobStatus.DONE and claim.attempts >= 2
    print(f"\nkill -9 after {at_kill.processed} of {CONTACTS} contacts; worker back in "
          f"{restart:.1f} s; resumed {resumed:.1f} s and done {recovery:.1f} s after the "
          f"kill; report equals an uninterrupted run")
