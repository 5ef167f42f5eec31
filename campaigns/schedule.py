"""When to send: the campaign's time zone, quiet hours and the Tue–Thu 11:00/20:00 suggestion.

The time zone is the campaign's own field when set; otherwise the zone of the
audience's most common country (``crm.Contact.country``, derived from the
phone number) when that country keeps one clock; otherwise ``TIME_ZONE``.
A launch fixes the derived zone on the campaign, so quiet hours never move
while it sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone

from campaigns.audience import campaign_audience
from campaigns.models import Campaign
from campaigns.policy import sending_policy
from campaigns.zones import audience_time_zone
from tagging.audiences.language import SegmentError

# Read most (PRODUCT.md §7): Tuesday–Thursday at 11:00 or 20:00 local time.
SUGGESTED_WEEKDAYS = (1, 2, 3)  # Monday is 0
SUGGESTED_TIMES = (time(11, 0), time(20, 0))


def campaign_time_zone(campaign: Campaign) -> ZoneInfo:
    """The campaign's zone, else its audience's, else ``TIME_ZONE``."""
    if campaign.time_zone:
        try:
            return ZoneInfo(campaign.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    derived = None
    if getattr(campaign, "pk", None) and (campaign.audience or campaign.parent_id):
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
    if start is None and end is None:  # none of its own: the admin's default, if any
        policy = sending_policy()
        start, end = policy.quiet_start, policy.quiet_end
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
