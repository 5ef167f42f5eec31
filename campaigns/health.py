"""Campaigns' readiness numbers: the webhook backlog and how old its oldest delivery is."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from campaigns.models import WebhookDelivery
from crm.health import CheckResult


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
