"""Reads on rules."""

from __future__ import annotations

from tagging.rules.models import Rule, RuleRun

RECENT_RUNS = 10


def rule_recent_runs(*, rule: Rule, limit: int = RECENT_RUNS) -> list[RuleRun]:
    return list(rule.runs.order_by("-started_at", "-id")[:limit])
