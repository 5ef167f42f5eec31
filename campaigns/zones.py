"""Time zones by name: validation, the admin's choices, a country's zone, an audience's zone.

A leaf module (models validate ``Campaign.time_zone`` with it); which zone a
given campaign sends in is ``campaigns.schedule.campaign_time_zone``.
"""

from __future__ import annotations

import functools
import importlib.resources
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _


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


def audience_time_zone(contacts: QuerySet) -> str | None:
    """The zone of the most common country among ``contacts`` (one aggregate query)."""
    top = (contacts.exclude(country="").values("country").annotate(n=Count("id"))
           .order_by("-n", "country").first())
    return country_time_zone(top["country"]) if top else None
