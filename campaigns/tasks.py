"""Thin Celery tasks: ids in, one service call, ``acks_late``.

Services queue these by name (``crm.jobs.enqueue``); ``CampaignsConfig.ready``
imports this module so the names are registered in every process.
"""

from __future__ import annotations

from celery import shared_task

from campaigns.selectors import webhooks_waiting
from campaigns.sending import campaign_send_turn
from campaigns.services import deletion_confirmation_send
from campaigns.tick import campaigns_tick
from campaigns.webhooks import webhooks_drain


@shared_task(acks_late=True, ignore_result=True)
def campaigns_tick_task() -> None:
    """Run by beat every 2 s (``CELERY_BEAT_SCHEDULE``): dispatch due sends and webhook drains."""
    for campaign_id in campaigns_tick():
        campaign_send_task.delay(campaign_id)
    if webhooks_waiting().exists():
        webhooks_drain_task.delay()


@shared_task(acks_late=True, ignore_result=True)
def campaign_send_task(campaign_id: int) -> None:
    """One turn in one of the campaign's send slots (``campaign_send_turn``); queue the next
    while work is due. A worker killed mid-send frees its slot when the lease runs out;
    beat's tick queues this task every 2 s while sends are due, so sending goes on
    without the killed task."""
    if campaign_send_turn(campaign_id=campaign_id,
                          fan_out=lambda: campaign_send_task.delay(campaign_id)):
        campaign_send_task.delay(campaign_id)


@shared_task(acks_late=True, ignore_result=True)
def webhooks_drain_task() -> None:
    webhooks_drain()


@shared_task(acks_late=True, ignore_result=True)
def deletion_confirmation_send_task(request_id: int) -> None:
    """Ask a customer who wrote a deletion keyword to confirm; sent once."""
    deletion_confirmation_send(request_id=request_id)
