"""Connects recorded events to event rules. Only enqueues: the work runs on a worker."""

from __future__ import annotations

from crm.jobs import enqueue
from tagging.rules.models import Rule, RuleTrigger
from tagging.rules.tasks import rules_on_events_task


def on_events_recorded(sender, events, **kwargs) -> None:
    """Enqueue the event rules' task when an enabled event rule cares about these kinds."""
    kinds = {event.kind for event in events}
    if not Rule.objects.filter(enabled=True, trigger=RuleTrigger.EVENT,
                               event_kind__in=kinds).exists():
        return
    enqueue(rules_on_events_task.name, [event.pk for event in events])
