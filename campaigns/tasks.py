"""Thin Celery tasks: ids in, one service call, ``acks_late``."""

from __future__ import annotations

import uuid

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from campaigns import services
from campaigns.models import Send, SendStatus, WebhookDelivery
from campaigns.webhooks import webhook_process, webhooks_drain


@shared_task(acks_late=True, ignore_result=True)
def campaigns_tick_task() -> None:
    """Run by beat every couple of seconds (CELERY_BEAT_SCHEDULE)."""
    for campaign_id in services.campaigns_tick():
        campaign_send_task.delay(campaign_id)
    if WebhookDelivery.objects.filter(processed_at__isnull=True).exists():
        webhooks_drain_task.delay()


# A slice of sending fits well inside its lease; a worker killed mid-slice frees
# its slot when the lease runs out.
SLICE_SECONDS, LEASE_SECONDS = 10, 15


@shared_task(acks_late=True, ignore_result=True)
def campaign_send_task(campaign_id: int) -> None:
    """Send for a while in one of the campaign's slots; re-enqueue while work is due.

    ``WHATSAPP_SEND_CONCURRENCY`` slots (leases in the database) bound how many
    workers send for one campaign at once; a duplicate task finds every slot
    taken and returns.
    """
    holder = uuid.uuid4().hex
    slots = getattr(settings, "WHATSAPP_SEND_CONCURRENCY", 2)
    key = next((f"send:{campaign_id}:{slot}" for slot in range(slots)
                if services.lease_acquire(key=f"send:{campaign_id}:{slot}", holder=holder,
                                          seconds=LEASE_SECONDS)), None)
    if key is None:
        return
    if _slot_free(campaign_id, slots):
        campaign_send_task.delay(campaign_id)  # fan out: fill the next free slot
    try:
        result = services.campaign_send_batch(campaign_id=campaign_id, max_seconds=SLICE_SECONDS)
    finally:
        services.lease_release(key=key, holder=holder)
    if not result.stopped and Send.objects.filter(
            campaign_id=campaign_id, status=SendStatus.QUEUED).filter(
            Q(not_before__isnull=True) | Q(not_before__lte=timezone.now())).exists():
        campaign_send_task.delay(campaign_id)


@shared_task(acks_late=True, ignore_result=True)
def webhook_process_task(delivery_id: int) -> None:
    """One stored webhook (kept for tasks queued before drains existed)."""
    webhook_process(delivery_id=delivery_id)


@shared_task(acks_late=True, ignore_result=True)
def webhooks_drain_task() -> None:
    webhooks_drain()


def _slot_free(campaign_id: int, slots: int) -> bool:
    from campaigns.models import Lease

    taken = Lease.objects.filter(key__startswith=f"send:{campaign_id}:",
                                 expires_at__gt=timezone.now()).count()
    return taken < slots
