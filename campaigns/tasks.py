"""Thin Celery tasks: ids in, one service call, ``acks_late``.

Services queue these by name (``crm.jobs.enqueue``); ``CampaignsConfig.ready``
imports this module so the names are registered in every process.
"""

from __future__ import annotations

import uuid

from celery import shared_task

from campaigns.selectors import campaign_sends_due, webhooks_waiting
from campaigns.sending import (
    SLICE_SECONDS,
    campaign_send_batch,
    lease_release,
    send_slot_free,
    send_slot_take,
)
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
    """Send for a while in one of the campaign's slots; re-enqueue while work is due.

    ``WHATSAPP_SEND_CONCURRENCY`` slots (leases in the database) bound how many
    workers send for one campaign at once; a duplicate task finds every slot
    taken and returns, and so does a task for a campaign with nothing due (completed,
    paused, or waiting for a retry time): it queues no successor. A worker killed
    mid-send frees its slot when the lease runs out; beat's tick queues this task
    every 2 s while sends are due, so sending goes on without the killed task.
    """
    if not campaign_sends_due(campaign_id):
        return
    holder = uuid.uuid4().hex
    key = send_slot_take(campaign_id=campaign_id, holder=holder)
    if key is None:
        return
    if send_slot_free(campaign_id=campaign_id):
        campaign_send_task.delay(campaign_id)  # fan out: fill the next free slot
    try:
        result = campaign_send_batch(campaign_id=campaign_id, max_seconds=SLICE_SECONDS)
    finally:
        lease_release(key=key, holder=holder)
    if not result.stopped and campaign_sends_due(campaign_id):
        campaign_send_task.delay(campaign_id)


@shared_task(acks_late=True, ignore_result=True)
def webhooks_drain_task() -> None:
    webhooks_drain()


@shared_task(acks_late=True, ignore_result=True)
def deletion_confirmation_send_task(request_id: int) -> None:
    """Ask a customer who wrote a deletion keyword to confirm; sent once."""
    deletion_confirmation_send(request_id=request_id)
