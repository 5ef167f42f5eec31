"""Thin Celery wrappers: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from crm.jobs import job_running
from tagging.rules.models import Rule, RunTrigger
from tagging.rules.services import RULE_JOB, rule_run, rules_apply_to_events


@shared_task(acks_late=True, ignore_result=True)
def rule_run_task(rule_id: int) -> None:
    """Run one scheduled rule (beat calls this); a deleted or disabled rule is skipped.

    The run is one transaction: a worker killed in the middle left nothing, and the
    sweeper (``crm.jobs``) runs it again; a duplicate while it runs returns.
    """
    with job_running(RULE_JOB, rule_id) as claim:
        rule = Rule.objects.filter(pk=rule_id, enabled=True).first()
        if claim is not None and rule is not None:
            rule_run(rule=rule, trigger=RunTrigger.SCHEDULE)


@shared_task(acks_late=True, ignore_result=True)
def rules_on_events_task(event_ids: list[int]) -> None:
    """Run the event rules for freshly recorded events; re-delivery finds the work done."""
    rules_apply_to_events(event_ids=event_ids)
