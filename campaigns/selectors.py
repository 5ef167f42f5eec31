"""Reads: what the send loop and the tick ask; reports per variant, the z-test, drill-down."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import (
    Count,
    Exists,
    ExpressionWrapper,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
)
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.models import (
    Campaign,
    CampaignStatus,
    DeletionRequest,
    Exclusion,
    InboundMessage,
    OptOut,
    OptOutKeyword,
    Send,
    SendStatus,
    Template,
    WebhookDelivery,
)
from campaigns.schedule import quiet_hours
from crm.models import Contact, Event, EventKind

SENT_OR_LATER = [SendStatus.SENT, SendStatus.DELIVERED, SendStatus.READ]


# --- For sending ----------------------------------------------------------------------

def due_sends(campaign_id: int, now: datetime | None = None) -> QuerySet[Send]:
    """Queued sends of a campaign whose ``not_before`` (backoff, deferral) has passed."""
    now = now or timezone.now()
    return Send.objects.filter(campaign_id=campaign_id, status=SendStatus.QUEUED).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now))


def campaign_sends_due(campaign_id: int, now: datetime | None = None) -> bool:
    """True while the campaign is sending and has sends due: a send loop has work."""
    return Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).exists() \
        and due_sends(campaign_id, now).exists()


def webhooks_waiting(now: datetime | None = None) -> QuerySet[WebhookDelivery]:
    """Stored webhooks not yet applied or set aside, and not postponed beyond ``now``."""
    now = now or timezone.now()
    return WebhookDelivery.objects.filter(processed_at__isnull=True).filter(
        Q(retry_at__isnull=True) | Q(retry_at__lte=now))


def campaign_templates(campaign: Campaign) -> dict[str, Template]:
    """Variant key → template ("" is the campaign's own template)."""
    templates = {"": campaign.template}
    variants = (campaign.ab_config or {}).get("variants") or []
    ids = [v.get("template") for v in variants]
    by_id = Template.objects.in_bulk([i for i in ids if i])
    for variant in variants:
        templates[variant["key"]] = by_id.get(variant.get("template")) or campaign.template
    if campaign.ab_winner in templates:
        # After the decision the held rest (variant "") gets the winner's template.
        templates[""] = templates[campaign.ab_winner]
    return templates


def opt_out_words() -> list[str]:
    return list(OptOutKeyword.objects.filter(active=True).values_list("word", flat=True))


def daily_budget_left(phone_number_id: str, now: datetime | None = None) -> int | None:
    """Unique recipients still allowed in the rolling 24 h (None: unlimited)."""
    limit = getattr(settings, "WHATSAPP_DAILY_UNIQUE_LIMIT", 0)
    if not limit:
        return None
    now = now or timezone.now()
    used = (Send.objects.filter(Q(campaign__phone_number_id=phone_number_id)
                                | Q(campaign__phone_number_id=""))
            .filter(Q(sent_at__gte=now - timedelta(hours=24)) | Q(status=SendStatus.SENDING))
            .values("contact_id").distinct().count())
    return max(limit - used, 0)


# --- Reports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> ZTest | None:
    """Two-sided two-proportion z-test; None when a group is empty or nothing varies."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return ZTest(0.0, 1.0)
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return ZTest(z, math.erfc(abs(z) / math.sqrt(2)))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def conversion_window() -> timedelta:
    return timedelta(days=getattr(settings, "CAMPAIGNS_CONVERSION_DAYS", 7))


def _purchases(window: timedelta):
    return Event.objects.filter(
        contact=OuterRef("contact"), kind=EventKind.PURCHASE,
        occurred_at__gte=OuterRef("sent_at"),
        occurred_at__lte=ExpressionWrapper(OuterRef("sent_at") + window,
                                           output_field=Send._meta.get_field("sent_at")))


def bought_after_send() -> Exists:
    """For ``Send`` annotations: the recipient bought within the conversion window after it."""
    return Exists(_purchases(conversion_window()))


def counts(sends: QuerySet[Send]) -> dict:
    """Sent, delivered, read, replied, failed (by code), conversions, revenue and rates."""
    window = conversion_window()
    totals = sends.aggregate(
        recipients=Count("id"),
        queued=Count("id", filter=Q(status__in=[SendStatus.QUEUED, SendStatus.SENDING,
                                                SendStatus.HELD])),
        sent=Count("id", filter=Q(status__in=SENT_OR_LATER)),
        delivered=Count("id", filter=Q(status__in=[SendStatus.DELIVERED, SendStatus.READ])),
        read=Count("id", filter=Q(status=SendStatus.READ)),
        replied=Count("id", filter=Q(replied_at__isnull=False)),
        clicked=Count("id", filter=Q(clicked_at__isnull=False)),
        failed_total=Count("id", filter=Q(status=SendStatus.FAILED)),
        holdout=Count("id", filter=Q(status=SendStatus.HOLDOUT)),
        limited=Count("id", filter=Q(status=SendStatus.LIMITED)),
        next_retry_at=Min("not_before", filter=Q(status=SendStatus.LIMITED)),
        cancelled=Count("id", filter=Q(status=SendStatus.CANCELLED)),
    )
    failed = dict(sends.filter(status=SendStatus.FAILED).values_list("error_code")
                  .annotate(n=Count("id")).order_by().values_list("error_code", "n"))
    converted = sends.filter(sent_at__isnull=False).annotate(
        bought=Exists(_purchases(window))).aggregate(
        conversions=Count("id", filter=Q(bought=True)))
    # Revenue: purchases by recipients within the window after their message.
    attributed = sends.filter(
        contact=OuterRef("contact"), sent_at__lte=OuterRef("occurred_at"),
        sent_at__gte=ExpressionWrapper(OuterRef("occurred_at") - window,
                                       output_field=Send._meta.get_field("sent_at")))
    converted["revenue"] = Event.objects.filter(kind=EventKind.PURCHASE).filter(
        Exists(attributed)).aggregate(total=Sum("amount"))["total"]
    # Messages that reached WhatsApp (failed ones count: they were attempted).
    attempted = totals["sent"] + totals["failed_total"]
    result = {
        **totals,
        "failed": {str(code if code is not None else "unknown"): n for code, n in failed.items()},
        "conversions": converted["conversions"] or 0,
        "revenue": str(converted["revenue"] or Decimal("0.00")),
        "delivery_rate": _rate(totals["delivered"], attempted),
        "read_rate": _rate(totals["read"], totals["delivered"]),
        "reply_rate": _rate(totals["replied"], totals["delivered"]),
        "click_rate": _rate(totals["clicked"], totals["delivered"]),
        "conversion_rate": _rate(converted["conversions"] or 0, totals["sent"]),
    }
    result["flags"] = flags(result)
    retry = totals["next_retry_at"]
    if retry:
        result["next_retry_at"] = retry.isoformat()
        result["flags"].append(_(
            "%(n)d recipients were limited by WhatsApp (131049, its per-user marketing limit); "
            "they are retried automatically, the next from %(at)s.")
            % {"n": totals["limited"], "at": f"{timezone.localtime(retry):%Y-%m-%d %H:%M}"})
    return result


def flags(row: dict) -> list[str]:
    notes = []
    if row["delivery_rate"] is not None and row["delivery_rate"] < 0.95:
        notes.append(_("Delivery under 95%: the list has many numbers that are not on "
                       "WhatsApp or no longer valid; clean it."))
    if row["read_rate"] is not None and row["read_rate"] < 0.60:
        notes.append(_("Read rate under 60%: check the send time (Tue–Thu 11:00 or 20:00 read "
                       "best) and the opening line."))
    if row["reply_rate"] is not None and row["reply_rate"] > 0.05:
        notes.append(_("Reply rate over 5%: good."))
    return notes


def campaign_report(campaign: Campaign) -> dict:
    """The whole report: totals, exclusions by reason, per variant, A/B significance."""
    sends = Send.objects.filter(campaign=campaign)
    report = {"campaign": campaign.name, "status": campaign.status,
              "status_message": campaign.status_message, **counts(sends)}
    report["quiet_hours"] = quiet_hours_state(campaign)
    report["excluded"] = dict(Exclusion.objects.filter(campaign=campaign).values_list("reason")
                              .annotate(n=Count("id")).order_by().values_list("reason", "n"))
    variants = [v["key"] for v in (campaign.ab_config or {}).get("variants") or []]
    if variants and sends.exclude(variant="").exists():
        report["variants"] = {key: counts(sends.filter(variant=key)) for key in variants}
        report["ab"] = ab_comparison(campaign, report["variants"])
    return report


def quiet_hours_state(campaign: Campaign, now: datetime | None = None) -> dict | None:
    """The campaign's quiet hours and whether they hold sending back right now."""
    hours = quiet_hours(campaign)
    if hours is None:
        return None
    until = hours.until(now or timezone.now())
    active = bool(until) and campaign.status in ("scheduled", "sending")
    return {
        "window": str(hours), "time_zone": hours.zone.key, "active": active,
        "resumes_at": until.isoformat() if until else None,
        "note": (_("Quiet hours %(window)s: nothing is sent now; sending resumes by itself at "
                   "%(at)s.") % {"window": hours, "at": f"{until:%Y-%m-%d %H:%M}"}
                 if active else _("Quiet hours %(window)s: nothing is sent in this window.")
                 % {"window": hours}),
    }


# The metric's name inside the A/B note ("… beats … on the read rate").
_METRIC_WORDS = {"read": gettext_lazy("read"), "reply": gettext_lazy("reply")}


def ab_comparison(campaign: Campaign, per_variant: dict[str, dict]) -> dict:
    metric = (campaign.ab_config or {}).get("metric", "read")
    numerator = "read" if metric == "read" else "replied"
    ranked = sorted(per_variant.items(),
                    key=lambda kv: (kv[1][numerator] / kv[1]["delivered"]
                                    if kv[1]["delivered"] else 0.0), reverse=True)
    (best, b), (second, s) = ranked[0], ranked[1]
    test = two_proportion_z(b[numerator], b["delivered"], s[numerator], s["delivered"])
    significant = bool(test and test.significant)
    return {
        "metric": metric, "leader": best, "runner_up": second,
        "z": round(test.z, 3) if test else None,
        "p_value": round(test.p_value, 4) if test else None,
        "significant": significant,
        "note": (_("%(a)s beats %(b)s on %(metric)s rate (p = %(p).3f).")
                 if significant else
                 _("The difference between %(a)s and %(b)s is not statistically significant "
                   "(p = %(p).3f); %(a)s goes out because it is ahead, but treat it as a tie."))
        % {"a": best, "b": second, "metric": _METRIC_WORDS.get(metric, metric),
           "p": test.p_value if test else 1.0},
    }


def recipients(campaign: Campaign) -> QuerySet[Send]:
    """Per-recipient rows for drill-down and CSV export."""
    return Send.objects.filter(campaign=campaign).select_related("contact").annotate(
        converted=Exists(_purchases(conversion_window()))).order_by("id")




# --- Privacy: what campaigns hold about one contact (crm.privacy) -------------------------

def _iso(value) -> str | None:
    return value.isoformat() if value else None


def contact_messages_export(contact: Contact) -> list[dict]:
    """Every campaign message to the contact with its statuses as WhatsApp reported them."""
    sends = (Send.objects.filter(contact=contact).select_related("campaign")
             .prefetch_related("status_events").order_by("created_at", "id"))
    return [{
        "campaign": send.campaign.name, "variant": send.variant, "phone": send.phone,
        "status": send.get_status_display(), "sent_at": _iso(send.sent_at),
        "delivered_at": _iso(send.delivered_at), "read_at": _iso(send.read_at),
        "failed_at": _iso(send.failed_at), "replied_at": _iso(send.replied_at),
        "clicked_at": _iso(send.clicked_at),
        "error": send.error_detail,
        "statuses": [{"status": e.status, "at": _iso(e.occurred_at)}
                     for e in send.status_events.all()],
    } for send in sends]


def contact_inbound_export(contact: Contact) -> list[dict]:
    rows = InboundMessage.objects.filter(contact=contact).order_by("occurred_at", "id")
    return [{"at": _iso(m.occurred_at), "kind": m.kind, "text": m.text, "action": m.action}
            for m in rows]


def contact_consent_log_export(contact: Contact) -> list[dict]:
    """Opt-outs and re-opt-ins from WhatsApp, and requests to be erased."""
    rows = [{"at": _iso(o.created_at), "what": "resumed" if o.resumed else "opted out",
             "source": o.source, "detail": o.detail}
            for o in OptOut.objects.filter(contact=contact).order_by("created_at", "id")]
    rows += [{"at": _iso(r.requested_at), "what": "asked to be erased",
              "source": "keyword", "detail": f"confirmed {_iso(r.confirmed_at)}"
              if r.confirmed_at else ""}
             for r in DeletionRequest.objects.filter(contact=contact)]
    return rows


def contact_exclusions_export(contact: Contact) -> list[dict]:
    rows = Exclusion.objects.filter(contact=contact).select_related("campaign")
    return [{"campaign": e.campaign.name, "reason": e.get_reason_display(),
             "at": _iso(e.created_at)} for e in rows]


# Row counts of the exports above, for the erasure's confirmation page (``PrivacyPart.count``).

def contact_messages_count(contact: Contact) -> int:
    return Send.objects.filter(contact=contact).count()


def contact_inbound_count(contact: Contact) -> int:
    return InboundMessage.objects.filter(contact=contact).count()


def contact_consent_log_count(contact: Contact) -> int:
    return (OptOut.objects.filter(contact=contact).count()
            + DeletionRequest.objects.filter(contact=contact).count())


def contact_exclusions_count(contact: Contact) -> int:
    return Exclusion.objects.filter(contact=contact).count()
