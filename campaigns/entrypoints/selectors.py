"""Reads: which entry points a message names, and what each entry point brought."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncWeek
from django.utils import timezone

from campaigns.entrypoints.models import AdSource, Arrival, EntryPoint, EntryPointKind
from crm.models import Event, EventKind


def active_q(when: datetime) -> Q:
    return (Q(active=True) & (Q(active_from__isnull=True) | Q(active_from__lte=when))
            & (Q(active_until__isnull=True) | Q(active_until__gte=when)))


def entry_points_named(text: str, when: datetime) -> list[EntryPoint]:
    """Active entry points whose code stands in ``text``, in any case.

    The code must stand on its own (no letter or digit right before or after
    it), so that the code ``ABC1`` is not found inside ``XABC12``.
    """
    if not text:
        return []
    points = {p.code: p for p in EntryPoint.objects.filter(active_q(when))}
    if not points:
        return []
    alternatives = "|".join(re.escape(code) for code in sorted(points, key=len, reverse=True))
    pattern = re.compile(rf"(?<![0-9A-Za-z])({alternatives})(?![0-9A-Za-z])", re.IGNORECASE)
    found = dict.fromkeys(m.upper() for m in pattern.findall(text))
    return [points[code] for code in found if code in points]


def entry_point_for_referral(referral, when: datetime) -> EntryPoint | None:
    """The entry point of an ad's referral: mapped by its source_id, else the ads default."""
    if not isinstance(referral, dict) or not referral:
        return None
    source_id = referral.get("source_id")
    if isinstance(source_id, str | int) and str(source_id).strip():
        mapped = EntryPoint.objects.filter(active_q(when), Exists(AdSource.objects.filter(
            entry_point=OuterRef("pk"), source_id=str(source_id).strip()))).first()
        if mapped is not None:
            return mapped
    return EntryPoint.objects.filter(active_q(when), kind=EntryPointKind.ADS).first()


def entry_points_for_message(message: dict, text: str, when: datetime) -> list[EntryPoint]:
    """Every entry point a message arrives through: its ad first, then the codes it names."""
    points = [p for p in [entry_point_for_referral(message.get("referral"), when)] if p]
    points += [p for p in entry_points_named(text, when) if p not in points]
    return points


def entry_points_overview(queryset: QuerySet[EntryPoint]) -> QuerySet[EntryPoint]:
    """Entry points with their totals: chats started, new contacts, consented."""
    return queryset.annotate(
        n_chats=Count("arrivals"),
        n_new=Count("arrivals", filter=Q(arrivals__new_contact=True)),
        n_consented=Count("arrivals", filter=Q(arrivals__consented=True)))


@dataclass
class Period:
    start: date
    chats: int = 0
    new_contacts: int = 0
    consented: int = 0
    purchases: int = 0
    revenue: Decimal = Decimal(0)


def entry_point_history(entry_point: EntryPoint, *, unit: str = "week", periods: int = 12,
                        now: datetime | None = None) -> list[Period]:
    """Per day or week, oldest first: chats, new contacts, consented, and the purchases
    (count and revenue) that contacts who arrived here made afterwards.

    A purchase counts for the entry point when the contact arrived there before it
    (``Exists``), so an older customer's earlier orders are not credited to it.
    """
    now = timezone.localtime(now or timezone.now())
    trunc = TruncDay if unit == "day" else TruncWeek
    today = now.date()
    first = today - timedelta(days=periods - 1) if unit == "day" else \
        today - timedelta(days=today.weekday(), weeks=periods - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    rows = {first + (timedelta(days=i) if unit == "day" else timedelta(weeks=i)): None
            for i in range(periods)}
    result = {start: Period(start) for start in rows}

    def key(value) -> date:
        return value.date() if isinstance(value, datetime) else value

    arrivals = (Arrival.objects.filter(entry_point=entry_point, arrived_at__gte=since)
                .annotate(at=trunc("arrived_at")).values("at")
                .annotate(chats=Count("id"), new=Count("id", filter=Q(new_contact=True)),
                          consented=Count("id", filter=Q(consented=True))).order_by())
    for row in arrivals:
        period = result.get(key(row["at"]))
        if period is not None:
            period.chats, period.new_contacts = row["chats"], row["new"]
            period.consented = row["consented"]
    arrived_before = Arrival.objects.filter(entry_point=entry_point,
                                            contact_id=OuterRef("contact_id"),
                                            arrived_at__lte=OuterRef("occurred_at"))
    purchases = (Event.objects.filter(
        kind=EventKind.PURCHASE, occurred_at__gte=since,
        contact_id__in=Arrival.objects.filter(entry_point=entry_point).values("contact_id"))
        .filter(Exists(arrived_before)).annotate(at=trunc("occurred_at")).values("at")
        .annotate(n=Count("id"), revenue=Sum("amount")).order_by())
    for row in purchases:
        period = result.get(key(row["at"]))
        if period is not None:
            period.purchases, period.revenue = row["n"], row["revenue"] or Decimal(0)
    return list(result.values())


def contact_arrivals_export(contact) -> list[dict]:
    """The entry points the contact arrived through, with the consent text they saw."""
    rows = Arrival.objects.filter(contact=contact).select_related("entry_point").order_by(
        "arrived_at")
    return [{"entry_point": a.entry_point.name, "at": a.arrived_at.isoformat(),
             "new_contact": a.new_contact, "consent_recorded": a.consented,
             "consent_text_shown": a.consent_text, "ad_referral": a.referral} for a in rows]
