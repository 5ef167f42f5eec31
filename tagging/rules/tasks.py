"""Thin Celery wrappers: ids in, one service call."""

from __future__ import annotations

from celery import shared_task

from tagging.rules.models import Rule, RunTrigger
from tagging.rules.services import rule_run, rules_apply_to_events


@shared_task(acks_late=True, ignore_result=True)
def rule_run_task(rule_id: int) -> None:
    """Run one scheduled rule (beat calls this); a deleted or disabled rule is skipped."""
    rule = Rule.objects.filter(pk=rule_id, enabled=True).first()
    if rule is not None:
        rule_run(rule=rule, trigger=RunTrigger.SCHEDULE)


@shared_task(acks_late=True, ignore_result=True)
def rules_on_events_task(event_ids: list[int]) -> None:
    """Run the event rules for freshly recorded events; re-delivery finds the work done."""
    rules_apply_to_events(event_ids=event_ids)
