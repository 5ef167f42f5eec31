"""Thin Celery tasks for journeys; ``JourneysConfig.ready`` imports this module."""

from __future__ import annotations

from celery import shared_task

from campaigns.journeys.services import journeys_advance, journeys_enroll_scheduled


@shared_task(acks_late=True, ignore_result=True)
def journeys_advance_task() -> None:
    """Run due journey steps in a batch; queue itself again while more are due."""
    if journeys_advance().more:
        journeys_advance_task.delay()


@shared_task(acks_late=True, ignore_result=True)
def journeys_tick_task() -> None:
    """Beat, every minute: let joined and birthday contacts in, then run due steps."""
    journeys_enroll_scheduled()
    journeys_advance_task.delay()
