"""The frequency caps and default quiet hours in force: the admin's row, else the environment.

Read on every launch, triggered send and tick, so the row is cached for a few
seconds (Django's cache); the admin clears it when the row is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from django.conf import settings
from django.core.cache import cache

from campaigns.models import SendingPolicy

CACHE_KEY, CACHE_SECONDS = "campaigns:sending-policy", 10


@dataclass(frozen=True)
class Policy:
    cap_per_day: int
    cap_per_week: int
    quiet_start: time | None = None
    quiet_end: time | None = None


def sending_policy() -> Policy:
    """The caps and default quiet hours now in force."""
    row = cache.get(CACHE_KEY)
    if row is None:  # only the row is cached: the environment is read every time
        row = SendingPolicy.objects.filter(pk=1).values(
            "cap_per_day", "cap_per_week", "quiet_start", "quiet_end").first() or {}
        cache.set(CACHE_KEY, row, CACHE_SECONDS)
    return Policy(cap_per_day=_or(row.get("cap_per_day"), settings.CAMPAIGNS_CAP_PER_DAY),
                  cap_per_week=_or(row.get("cap_per_week"), settings.CAMPAIGNS_CAP_PER_WEEK),
                  quiet_start=row.get("quiet_start"), quiet_end=row.get("quiet_end"))


def _or(value, default: int) -> int:
    return default if value is None or value == "" else int(value)


def sending_policy_changed() -> None:
    """Forget the cached policy (the admin calls it after a save)."""
    cache.delete(CACHE_KEY)
