"""What campaigns tell insight and governance (registered in ``CampaignsConfig.ready``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignStatus, Send, SendStatus
from campaigns.selectors import SENT_OR_LATER, bought_after_send, counts
from crm.models import Contact
from tagging.audiences.language import expressions_naming, tags_used_by
from tagging.insight.usage import Metric, rate_band


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


# Campaigns still to send (or sending) use their tags now: archiving one would change who gets it.
_UNDERWAY = [CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED]


def tag_last_used(*, since: datetime) -> dict[int, datetime]:
    """Insight usage: tags a campaign's audience or suppression names.

    A campaign launched since ``since`` used them at its launch; one scheduled,
    sending or paused uses them now. Two queries: the campaigns, the vocabulary.
    """
    now = timezone.now()
    rows = Campaign.objects.filter(Q(launched_at__gte=since) | Q(status__in=_UNDERWAY)).values_list(
        "audience", "suppression", "status", "launched_at")
    uses = []
    for audience, suppression, status, launched_at in rows:
        at = now if status in _UNDERWAY else launched_at
        uses += [(audience, at), (suppression, at)]
    return tags_used_by(uses)


def _send_results(contacts: QuerySet[Contact]) -> dict:
    """One aggregate over the sends to ``contacts`` (a semi-join, not a list of ids)."""
    sends = Send.objects.order_by().filter(contact__in=contacts.order_by().values("pk"))
    return sends.annotate(bought=bought_after_send()).aggregate(
        sent=Count("pk", filter=Q(status__in=SENT_OR_LATER)),
        failed=Count("pk", filter=Q(status=SendStatus.FAILED)),
        delivered=Count("pk", filter=Q(status__in=[SendStatus.DELIVERED, SendStatus.READ])),
        read=Count("pk", filter=Q(status=SendStatus.READ)),
        replied=Count("pk", filter=Q(replied_at__isnull=False, status__in=SENT_OR_LATER)),
        converted=Count("pk", filter=Q(bought=True, sent_at__isnull=False,
                                       status__in=SENT_OR_LATER)),
    )


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rates_by_holders(*, holders: QuerySet[Contact], others: QuerySet[Contact]) -> list[Metric]:
    """Tag analytics: campaign send results of the tag's holders against everybody else.

    The rates mean what they mean on a campaign's report (``campaigns.selectors.counts``):
    delivered of attempted, read and replied of delivered, bought within the
    conversion window of sent. Holding is as of now, not as of the send.
    """
    h, o = _send_results(holders), _send_results(others)

    def rates(key: str, whole) -> tuple[float | None, float | None]:
        return _ratio(h[key], whole(h)), _ratio(o[key], whole(o))

    note = _("From campaign messages sent; holding the tag as of now.")
    return [
        Metric(_("Campaign messages sent"), h["sent"], o["sent"], "", note),
        Metric(_("Campaign messages delivered"),
               *rates("delivered", lambda r: r["sent"] + r["failed"]), "%", note),
        Metric(_("Campaign messages read"), *rates("read", lambda r: r["delivered"]), "%", note),
        Metric(_("Replied to a campaign message"),
               *rates("replied", lambda r: r["delivered"]), "%", note),
        Metric(_("Bought after a campaign message (conversion)"),
               *rates("converted", lambda r: r["sent"]), "%", note),
    ]
