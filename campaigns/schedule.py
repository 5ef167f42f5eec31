"""When to send: the campaign's time zone, quiet hours and the Tue–Thu 11:00/20:00 suggestion.

The time zone is the campaign's own field when set; otherwise the zone of the
audience's most common country (``crm.Contact.country``, derived from the
phone number) when that country keeps one clock; otherwise ``TIME_ZONE``.
A launch fixes the derived zone on the campaign, so quiet hours never move
while it sends.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

# Read most (PRODUCT.md §7): Tuesday–Thursday at 11:00 or 20:00 local time.
SUGGESTED_WEEKDAYS = (1, 2, 3)  # Monday is 0
SUGGESTED_TIMES = (time(11, 0), time(20, 0))


def validate_time_zone(value: str) -> None:
    if value and value not in _zones():
        raise ValidationError(
            _("“%(value)s” is not a time zone; use an IANA name such as Europe/Berlin or "
              "Asia/Hong_Kong.") % {"value": value})


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def time_zone_choices(*extra: str) -> list[tuple[str, str]]:
    """Region/City zones, plus UTC, the server's zone and any ``extra`` valid names."""
    names = {name for name in _zones() if "/" in name
             and not name.startswith(("Etc/", "SystemV/", "posix/", "right/"))}
    names |= {name for name in ("UTC", settings.TIME_ZONE, *extra) if name in _zones()}
    return [(name, name) for name in sorted(names)]


@functools.cache
def _country_zones() -> dict[str, list[str]]:
    """ISO country → its zones from tzdata's zone.tab (the most populous first)."""
    try:
        text = importlib.resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        try:
            with open("/usr/share/zoneinfo/zone.tab", encoding="ascii") as handle:
                text = handle.read()
        except OSError:
            return {}
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            zones.setdefault(parts[0].upper(), []).append(parts[2])
    return zones


def country_time_zone(country: str, *, year: int | None = None) -> str | None:
    """The zone of ``country`` when all its zones keep the same clock, else None.

    Germany (Berlin, Busingen) gives Europe/Berlin; the US, Spain (Canary
    Islands) or Australia give None: a single send time cannot suit them.
    """
    zones = _country_zones().get((country or "").upper())
    if not zones:
        return None
    year = year or timezone.now().year
    probes = [datetime(year, 1, 15, 12), datetime(year, 7, 15, 12)]
    first = ZoneInfo(zones[0])
    for name in zones[1:]:
        try:
            other = ZoneInfo(name)
        except ZoneInfoNotFoundError:
            continue
        if any(p.replace(tzinfo=first).utcoffset() != p.replace(tzinfo=other).utcoffset()
               for p in probes):
            return None
    return zones[0]


def audience_time_zone(contacts) -> str | None:
    """The zone of the most common country among ``contacts`` (one aggregate query)."""
    top = (contacts.exclude(country="").values("country").annotate(n=Count("id"))
           .order_by("-n", "country").first())
    return country_time_zone(top["country"]) if top else None


def campaign_time_zone(campaign) -> ZoneInfo:
    """The campaign's zone, else its audience's, else ``TIME_ZONE``."""
    if campaign.time_zone:
        try:
            return ZoneInfo(campaign.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    derived = None
    if getattr(campaign, "pk", None) and (campaign.audience or campaign.parent_id):
        from campaigns.services import campaign_audience
        from tagging.audiences.language import SegmentError

        try:
            derived = audience_time_zone(campaign_audience(campaign))
        except SegmentError:
            derived = None
    return ZoneInfo(derived or settings.TIME_ZONE)


def _zone(campaign_or_tz) -> ZoneInfo:
    if isinstance(campaign_or_tz, ZoneInfo):
        return campaign_or_tz
    if isinstance(campaign_or_tz, str):
        return ZoneInfo(campaign_or_tz or settings.TIME_ZONE)
    return campaign_time_zone(campaign_or_tz)


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    zone: ZoneInfo

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M} ({self.zone.key})"

    def _local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=self.zone)

    def until(self, now: datetime) -> datetime | None:
        """When the quiet period that contains ``now`` ends; None outside quiet hours."""
        local = now.astimezone(self.zone)
        moment = local.time().replace(tzinfo=None)
        if self.start < self.end:
            if self.start <= moment < self.end:
                return self._local(local.date(), self.end)
            return None
        # Across midnight, e.g. 21:00–08:00.
        if moment >= self.start:
            return self._local(local.date() + timedelta(days=1), self.end)
        if moment < self.end:
            return self._local(local.date(), self.end)
        return None


def quiet_hours(campaign, zone: ZoneInfo | None = None) -> QuietHours | None:
    """The campaign's quiet hours, or None when it has none."""
    start, end = campaign.quiet_start, campaign.quiet_end
    if start is None or end is None or start == end:
        return None
    return QuietHours(start, end, zone or campaign_time_zone(campaign))


def quiet_until(campaign, now: datetime | None = None) -> datetime | None:
    """When sending may resume, if ``now`` is inside the campaign's quiet hours."""
    hours = quiet_hours(campaign)
    return hours.until(now or timezone.now()) if hours else None


def send_time_suggest(campaign_or_tz, now: datetime | None = None) -> datetime:
    """The next Tue–Thu 11:00 or 20:00 after ``now`` in the campaign's (or the given) zone.

    For a campaign, slots inside its quiet hours are skipped. The result is an
    aware datetime in that zone.
    """
    zone = _zone(campaign_or_tz)
    hours = None if isinstance(campaign_or_tz, str | ZoneInfo) else quiet_hours(
        campaign_or_tz, zone)
    now = now or timezone.now()
    local = now.astimezone(zone)
    for offset in range(0, 15):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in SUGGESTED_WEEKDAYS:
            continue
        for at in SUGGESTED_TIMES:
            slot = datetime.combine(day, at, tzinfo=zone)
            if slot > now and not (hours and hours.until(slot)):
                return slot
    # Quiet hours cover both slots: take the first suggested day's 11:00 anyway.
    day = local.date() + timedelta(days=1)
    while day.weekday() not in SUGGESTED_WEEKDAYS:
        day += timedelta(days=1)
    return datetime.combine(day, SUGGESTED_TIMES[0], tzinfo=zone)
