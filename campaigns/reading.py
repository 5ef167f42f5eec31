"""Each contact's usual reading hour, and the send time it gives inside a campaign's window.

A contact's reading hour is the local hour in which they read most of our messages
(``Send.read_at``) over the last ``READ_HISTORY_DAYS`` days. Local means the zone of
their phone number's country (``campaigns.zones.country_time_zone``), else the
campaign's zone (countries with several clocks, unknown countries).

``reading_hours`` answers for a whole audience with one grouped query: the hour is
extracted in SQL, one ``CASE`` branch per zone present, so SQLite and PostgreSQL
agree (daylight saving included) and no query runs per contact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Case, Count, IntegerField, QuerySet, When
from django.db.models.functions import ExtractHour

from campaigns.models import Send
from campaigns.schedule import QuietHours
from campaigns.zones import country_time_zone

READ_HISTORY_DAYS = 90


def contact_zones(countries: Iterable[str]) -> dict[str, ZoneInfo]:
    """Country → its single clock's zone, for the countries that have one."""
    zones: dict[str, ZoneInfo] = {}
    for country in set(countries):
        name = country_time_zone(country) if country else None
        try:
            if name:
                zones[country] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return zones


def reading_hours(contacts: QuerySet, *, countries: Iterable[str], default_zone: ZoneInfo,
                  now: datetime) -> dict[int, tuple[int, ZoneInfo]]:
    """Contact id → (usual local reading hour, its zone), for contacts who read recently.

    ``contacts`` is a queryset of contact ids (used as a subquery, never as a list);
    ``countries`` are the countries among them (their zones become CASE branches).
    Ties go to the earlier hour, so a repeat gives the same answer.
    """
    zones = contact_zones(countries)
    by_zone: dict[str, list[str]] = {}
    for country, zone in zones.items():
        by_zone.setdefault(zone.key, []).append(country)
    hour = Case(
        *(When(contact__country__in=sorted(names),
               then=ExtractHour("read_at", tzinfo=ZoneInfo(key)))
          for key, names in sorted(by_zone.items())),
        default=ExtractHour("read_at", tzinfo=default_zone), output_field=IntegerField())
    rows = (Send.objects.filter(contact__in=contacts, read_at__isnull=False,
                                read_at__gte=now - timedelta(days=READ_HISTORY_DAYS),
                                read_at__lte=now)
            .annotate(hour=hour).values("contact_id", "contact__country", "hour")
            .annotate(n=Count("id")).order_by())
    best: dict[int, tuple[int, int, str]] = {}
    for row in rows.iterator(chunk_size=5000):
        key = (row["n"], -row["hour"])
        found = best.get(row["contact_id"])
        if found is None or key > (found[0], -found[1]):
            best[row["contact_id"]] = (row["n"], row["hour"], row["contact__country"])
    return {pk: (hour, zones.get(country, default_zone))
            for pk, (_n, hour, country) in best.items()}


def reading_time(hour: int, zone: ZoneInfo, *, start: datetime, window_hours: int,
                 quiet: QuietHours | None = None) -> datetime | None:
    """The next ``hour``:00 in ``zone`` after ``start`` within the window; None: send at start.

    None too when ``start`` already falls in that hour, when the next one lies beyond
    ``window_hours``, or when it falls in the campaign's quiet hours.
    """
    local = start.astimezone(zone)
    if local.hour == hour:
        return None
    slot = datetime.combine(local.date(), time(hour), tzinfo=zone)
    if slot <= start:
        slot = datetime.combine(local.date() + timedelta(days=1), time(hour), tzinfo=zone)
    if slot - start > timedelta(hours=window_hours):
        return None
    if quiet and quiet.until(slot):
        return None
    return slot
