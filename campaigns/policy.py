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
    found = cache.get(CACHE_KEY)
    if found is None:
        row = SendingPolicy.objects.filter(pk=1).first()
        found = Policy(
            cap_per_day=_or(row and row.cap_per_day, settings.CAMPAIGNS_CAP_PER_DAY),
            cap_per_week=_or(row and row.cap_per_week, settings.CAMPAIGNS_CAP_PER_WEEK),
            quiet_start=row.quiet_start if row else None,
            quiet_end=row.quiet_end if row else None)
        cache.set(CACHE_KEY, found, CACHE_SECONDS)
    return found


def _or(value, default: int) -> int:
    return default if value is None or value == "" else int(value)


def sending_policy_changed() -> None:
    """Forget the cached policy (the admin calls it after a save)."""
    cache.delete(CACHE_KEY)
