"""kill -9 of the worker in the middle of a scheduled rule run on 60,000 contacts: the run
is one transaction, so nothing of it is applied; a new worker runs the rule again within
60 s and its run log shows the same counts as an uninterrupted run."""

from __future__ import annotations

import time

import pytest

from crm.models import ConsentStatus, Job, JobStatus
from crm.services import contacts_insert
from tagging.models import TagAssignment
from tagging.rules.models import Rule, RuleRun
from tagging.rules.services import RULE_JOB, rule_save
from tagging.rules.tasks import rule_run_task
from tests.factories import TagFactory
from tests.faults.jobs_helpers import (
    Worker,
    broker_queue,  # noqa: F401  (fixture)
    needs_services,
    sweep_until,
    wait_for,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

CONTACTS = 60_000


def test_a_worker_killed_mid_rule_run_is_replaced_and_the_rule_runs_once_in_full(
        broker_queue, tmp_path):  # noqa: F811
    needs_services()
    contacts_insert(rows=[
        {"phone": f"+49153{50000000 + i:08d}", "country": "DE",
         "consent_status": ConsentStatus.OPTED_IN} for i in range(CONTACTS)])
    tag = TagFactory(name="Kundenstamm")
    rule = rule_save(rule=Rule(name="Alle Kunden", segment="purchases >= 0"), add_tags=[tag])
    worker = Worker(broker_queue, tmp_path / "worker.log")
    try:
        worker.start()
        rule_run_task.delay(rule.pk)  # as beat does on the rule's schedule
        assert wait_for(lambda: Job.objects.filter(kind=RULE_JOB, ref=rule.pk,
                                                   status=JobStatus.RUNNING).exists(), 60), \
            "the run did not start"
        time.sleep(0.5)
        killed = worker.kill()
        runs_at_kill = RuleRun.objects.filter(rule=rule).count()
        applied_at_kill = TagAssignment.objects.filter(tag=tag).count()
        restart = worker.start()
        done, resumed = sweep_until(
            lambda: RuleRun.objects.filter(rule=rule).exists(),
            killed=killed, kind=RULE_JOB, ref=rule.pk)
        recovery = time.monotonic() - killed
    finally:
        worker.stop()

    assert runs_at_kill == 0, "the worker was not killed mid-run"
    assert applied_at_kill == 0  # one transaction: nothing half-applied
    assert done, "the rule did not run within 60 s of the kill"
    runs = list(RuleRun.objects.filter(rule=rule).values("matched", "added", "errors"))
    assert runs[0] == {"matched": CONTACTS, "added": CONTACTS, "errors": ""}
    assert TagAssignment.objects.filter(tag=tag).count() == CONTACTS
    print(f"\nkill -9 mid-run (0 of {CONTACTS} applied); worker back in {restart:.1f} s; "
          f"run again {resumed:.1f} s and done {recovery:.1f} s after the kill; "
          f"report equals an uninterrupted run")
