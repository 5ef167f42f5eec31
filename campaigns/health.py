"""Campaigns' readiness numbers: the webhook backlog and its oldest age; sends waiting."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Sender, WebhookDelivery
from campaigns.schedule import quiet_until
from campaigns.selectors import due_sends
from crm.health import CheckResult

DUE_CAP = 10_000  # counting further costs time and says nothing more to an alert


def webhooks_check() -> CheckResult:
    """Stored webhooks not applied yet (an indexed count). A backlog older than
    ``HEALTH_WEBHOOK_LAG_SECONDS`` means the drains are stopped or too slow."""
    waiting = WebhookDelivery.objects.filter(processed_at__isnull=True)
    found = waiting.aggregate(oldest=Min("received_at"))
    oldest = found["oldest"]
    lag = 0.0 if oldest is None else (timezone.now() - oldest).total_seconds()
    backlog = waiting.count() if oldest is not None else 0
    limit = settings.HEALTH_WEBHOOK_LAG_SECONDS
    return CheckResult(lag <= limit, f"{backlog} waiting, oldest {lag:.0f} s (limit {limit} s)",
                       {"backlog": float(backlog), "lag_seconds": lag})


def sending_check() -> CheckResult:
    """Sends due now (queued, campaign sending, outside its quiet hours; counted up to
    ``DUE_CAP``) and stopped sending numbers. Information for the "stopped sender" alert
    (sends due while nothing is sent); it never makes the web unready."""
    now, due = timezone.now(), 0
    for campaign in Campaign.objects.filter(status=CampaignStatus.SENDING).only(
            "id", "time_zone", "quiet_start", "quiet_end", "audience", "parent"):
        if due < DUE_CAP and not quiet_until(campaign, now):
            due += due_sends(campaign.pk, now)[:DUE_CAP - due].count()
    stopped = Sender.objects.filter(stopped=True).count()
    return CheckResult(not stopped, f"{due} sends due, {stopped} sending numbers stopped",
                       {"sends_due": float(due), "senders_stopped": float(stopped)})
