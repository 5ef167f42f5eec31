"""What campaigns tell insight and governance (registered in ``CampaignsConfig.ready``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils.translation import gettext as _

from campaigns.models import Campaign, Send
from campaigns.selectors import counts
from tagging.audiences.language import expressions_naming
from tagging.insight.usage import rate_band


def _rate_cell(kind: str, value: float | None) -> dict:
    return {"text": "—" if value is None else f"{value:.0%}", "band": rate_band(kind, value)}


def recent_campaigns_panel(*, now: datetime) -> dict:
    """Delivery, read and reply rates of the campaigns launched in the last 30 days."""
    recent = Campaign.objects.filter(launched_at__gte=now - timedelta(days=30)).order_by(
        "-launched_at")[:8]
    rows = []
    for campaign in recent:
        row = counts(Send.objects.filter(campaign=campaign))
        rows.append([
            {"text": campaign.name, "url": f"/admin/campaigns/campaign/{campaign.pk}/change/"},
            row["sent"],
            _rate_cell("delivery", row["delivery_rate"]),
            _rate_cell("read", row["read_rate"]),
            _rate_cell("reply", row["reply_rate"]),
        ])
    return {
        "columns": [_("Campaign"), _("Sent"), _("Delivered"), _("Read"), _("Replied")],
        "rows": rows,
        "empty": _("No campaign launched in the last 30 days."),
        "link": {"url": "/admin/campaigns/campaign/", "label": _("All campaigns")},
    }


def campaigns_naming(tag) -> int:
    """How many campaigns name ``tag`` in their audience or suppression."""
    texts = (f"({a}) OR ({s})" if a and s else a or s
             for a, s in Campaign.objects.values_list("audience", "suppression"))
    return expressions_naming(tag, (t for t in texts if t))
