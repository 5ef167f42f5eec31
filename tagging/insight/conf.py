"""Insight settings: ``settings.TAGWERK_INSIGHT`` overrides these defaults key by key.

Read at call time, never at import, so tests can use ``override_settings``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Inactive: a tag nobody used (applied, or used by an audience, segment or rule)
    # for this many days is suggested for archiving (PRODUCT.md §8: 30 days).
    "INACTIVE_DAYS": 30,
    # Overloaded: a tag held by more than this share of all contacts (§8: 40%).
    "OVERLOADED_SHARE": 0.40,
    # Tag count bands for active tags (§1): under 30 too coarse, 30–80 healthy, over 100 hard.
    "TAG_COUNT_MIN": 30,
    "TAG_COUNT_MAX_HEALTHY": 80,
    "TAG_COUNT_MAX": 100,
    # Per dimension (Beyond: the sources give no number): fewer than 2 tags cannot tell
    # contacts apart; more than 20 cannot be scanned at a glance.
    "DIMENSION_TAGS_MIN": 2,
    "DIMENSION_TAGS_MAX": 20,
    # Stale: the contact has had no interaction for this many days (§6: 180 days).
    "STALE_DAYS": 180,
    # Sleeping VIPs: VIP-like tags of the purchasing-power dimension (§6).
    "PURCHASING_POWER_DIMENSION": "Kaufkraft",
    "VIP_TAG_PATTERN": r"vip",  # on the tag's name key; VIP, SVIP
    "REACTIVATION_TAG": "Historischer Bestand - Reaktivierung erforderlich",
    # Near-twins: edit distance of name keys, holder overlap (Jaccard) and synonym pairs.
    "TWIN_MAX_DISTANCE": 2,
    "TWIN_MIN_KEY_LENGTH": 4,
    "TWIN_OVERLAP": 0.90,
    "TWIN_SYNONYMS": [],  # e.g. [["Bestellt", "Bezahlt"]]
    # Activity levels from contact facts (§6: 14 days unread → watch, 60 days → churn risk).
    "ACTIVITY_HIGH_DAYS": 14,
    "ACTIVITY_CHURN_DAYS": 60,
    # Tags whose holders count as churn risk in the churn-rate trend.
    "CHURN_TAGS": ["Drohender Abwanderer", "流失风险"],  # the German and the Chinese demo
    "TREND_WEEKS": 12,
    # REPORT_SCHEDULE (Monday 07:00) and DASHBOARD_REFRESH_MINUTES (10) are read only by the
    # migration insight.0002_schedules when it creates the beat entries; afterwards the
    # schedules are edited under Periodic tasks in the admin.
    # Recipients of the weekly report when its beat task names none.
    "REPORT_RECIPIENTS": [],
    # Without any snapshot yet, the first page view computes one in place up to this
    # many contacts; above it the computation is queued for the worker.
    "SYNC_DASHBOARD_MAX_CONTACTS": 100_000,
    # Tag analytics of one tag, combination or dimension are cached this long (0: never).
    "ANALYTICS_CACHE_SECONDS": 600,
    # How many dashboard snapshots and health reports to keep.
    "KEEP_SNAPSHOTS": 20,
    "KEEP_REPORTS": 104,
}


def insight_setting(name: str) -> Any:
    """The value of one insight setting: ``settings.TAGWERK_INSIGHT[name]`` or the default."""
    overrides = getattr(settings, "TAGWERK_INSIGHT", {}) or {}
    return overrides.get(name, DEFAULTS[name])
