"""Reads for the campaign page before launch: who would get it, who not and why, and when.

The exclusions are the launch's own classification (``recipients_snapshot``) run in a
transaction that is rolled back, so the page and the launch can never disagree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns.audience import campaign_audience, reachable
from campaigns.models import Campaign, TemplateCategory
from campaigns.services import recipients_snapshot
from campaigns.zones import _country_zones, country_time_zone
from tagging.audiences.language import SegmentError

NIGHT_START, NIGHT_END = time(21, 0), time(8, 0)


@dataclass
class Estimate:
    audience: int = 0
    recipients: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    error: str = ""
    by_reading_hour: int = 0  # with send_at_reading_hour: recipients moved to their hour
    reading_slots: int = 0


def launch_estimate(campaign: Campaign, *, now: datetime | None = None) -> Estimate:
    """Audience size, recipients and exclusions by reason if the campaign launched now."""
    now = now or timezone.now()
    try:
        audience = campaign_audience(campaign, now).count()
        if campaign.pk is None:
            marketing = campaign.template.category == TemplateCategory.MARKETING
            count = reachable(campaign_audience(campaign, now), marketing=marketing).count()
            return Estimate(audience, count)
        with transaction.atomic():
            snapshot = recipients_snapshot(campaign=campaign, now=now)
            transaction.set_rollback(True)
    except SegmentError as exc:
        return Estimate(error=str(exc))
    return Estimate(audience, snapshot.recipients, dict(snapshot.excluded),
                    by_reading_hour=snapshot.by_reading_hour,
                    reading_slots=snapshot.reading_slots)


def reading_spread(campaign: Campaign, estimate: Estimate) -> str:
    """The sentence on how the reading-hour option spreads the sends; "" when it is off."""
    if not campaign.send_at_reading_hour or estimate.error:
        return ""
    at_start = estimate.recipients - estimate.by_reading_hour
    start = ngettext("%(n)d recipient at the start time.",
                     "%(n)d recipients at the start time.", at_start) % {"n": at_start}
    if not estimate.by_reading_hour:
        return _("No recipient has a reading hour within %(window)d hours of the start "
                 "(outside quiet hours); %(start)s") % {"window": campaign.reading_window_hours,
                                            "start": start}
    spread = ngettext(
        "%(n)d contact spread over %(slots)s by their reading habit;",
        "%(n)d contacts spread over %(slots)s by their reading habit;",
        estimate.by_reading_hour) % {
        "n": estimate.by_reading_hour,
        "slots": ngettext("%(h)d hour", "%(h)d hours", estimate.reading_slots)
        % {"h": estimate.reading_slots}}
    return f"{spread} {start}"


def _zone_of(country: str) -> ZoneInfo | None:
    name = country_time_zone(country) or next(iter(_country_zones().get(country, [])), None)
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def at_night(moment: time) -> bool:
    return moment >= NIGHT_START or moment < NIGHT_END


@dataclass
class NightWarning:
    send_at: datetime
    recipients: int
    countries: list[tuple[str, str, int]]  # (country, local time "02:33", contacts)


def night_recipients(campaign: Campaign, *, at: datetime | None = None) -> NightWarning | None:
    """Reachable contacts for whom ``at`` (default: the planned send time) is 21:00–08:00.

    Contacts are placed in time by their phone number's country (one aggregate query).
    """
    at = at or campaign.scheduled_at or timezone.now()
    try:
        contacts = campaign_audience(campaign, at)
    except SegmentError:
        return None
    marketing = campaign.template.category == TemplateCategory.MARKETING
    by_country = Counter(dict(
        reachable(contacts, marketing=marketing).exclude(country="").order_by()
        .values("country").annotate(n=Count("pk")).values_list("country", "n")))
    night: list[tuple[str, str, int]] = []
    for country, n in sorted(by_country.items(), key=lambda kv: -kv[1]):
        zone = _zone_of(country)
        if zone is None:
            continue
        local = at.astimezone(zone)
        if at_night(local.time()):
            night.append((country, f"{local:%H:%M}", n))
    if not night:
        return None
    return NightWarning(at, sum(n for _c, _t, n in night), night)
