"""Beat's periodic work for campaigns, every 2 seconds (``campaigns_tick_task``).

Above the services, the send loop and the webhooks: it calls them all, and
posts the sandbox's due webhooks. Silent when there is nothing to do (Celery's
own lines about the tick are filtered out, ``config.logfilters``); one INFO
line when it did something.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from campaigns.backends.sandbox import sandbox_flush
from campaigns.models import Campaign, CampaignStatus
from campaigns.schedule import quiet_until
from campaigns.selectors import due_sends
from campaigns.sending import inflight_reconcile, limited_requeue
from campaigns.services import ab_decide, campaign_finish_if_done, campaign_start, followups_create

logger = logging.getLogger(__name__)


def campaigns_tick(*, now: datetime | None = None) -> list[int]:
    """Start due campaigns, decide A/B tests, create follow-ups, reconcile, post sandbox events.

    Returns the ids of campaigns with sends due now (not inside their quiet
    hours), for the caller to dispatch; campaigns with nothing left are finished.
    """
    now = now or timezone.now()
    done = {
        "started": sum(campaign_start(campaign=campaign, now=now) is not None
                       for campaign in Campaign.objects.filter(
                           status=CampaignStatus.SCHEDULED, scheduled_at__lte=now)),
        "A/B decided": sum(bool(ab_decide(campaign=campaign, now=now))
                           for campaign in Campaign.objects.filter(
                               status=CampaignStatus.SENDING, ab_decided_at__isnull=True
                           ).exclude(ab_config={})),
        "follow-ups created": len(followups_create(now=now)),
        "requeued in flight": inflight_reconcile(now=now),
        "limited requeued": limited_requeue(now=now),
        "sandbox webhooks posted": sandbox_flush(now=now),
    }
    due, finished = [], 0
    for campaign in Campaign.objects.filter(status=CampaignStatus.SENDING).only(
            "id", "time_zone", "quiet_start", "quiet_end", "audience", "parent"):
        if campaign_finish_if_done(campaign_id=campaign.pk):
            finished += 1
        elif not quiet_until(campaign, now) and due_sends(campaign.pk, now).exists():
            due.append(campaign.pk)  # inside quiet hours the sends wait for a later tick
    done["finished"] = finished
    _log(done, due)
    return due


def _log(done: dict[str, int], due: list[int]) -> None:
    parts = [f"{what} {n}" for what, n in done.items() if n]
    if due:
        parts.append("sending " + ", ".join(map(str, due)))
    if parts:
        logger.info("campaigns tick: %s", "; ".join(parts))
