"""Reads on rules."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max

from tagging.audiences.language import note_use, tags_used_by
from tagging.models import Tag
from tagging.rules.models import Rule, RuleRun

RECENT_RUNS = 10


def rule_recent_runs(*, rule: Rule, limit: int = RECENT_RUNS) -> list[RuleRun]:
    return list(rule.runs.order_by("-started_at", "-id")[:limit])


def rule_tags_last_used(*, since: datetime) -> dict[int, datetime]:
    """Insight usage: tags an enabled rule names in its Who or Then, at its last run.

    A rule that never ran counts from when it was last saved. A few queries: the
    rules with their last run, their added and removed tags, the vocabulary for
    the expressions, and the tags of dimensions a rule templates into or clears.
    """
    rules = list(Rule.objects.filter(enabled=True).annotate(last_run=Max("runs__started_at"))
                 .values("pk", "segment", "last_run", "updated_at", "template_dimension_id",
                         "remove_dimension_id"))
    at = {r["pk"]: r["last_run"] or r["updated_at"] for r in rules}
    latest = tags_used_by((r["segment"], at[r["pk"]]) for r in rules)
    for through in (Rule.add_tags.through, Rule.remove_tags.through):
        for rule_id, tag_id in through.objects.filter(rule_id__in=at).values_list(
                "rule_id", "tag_id"):
            note_use(latest, (tag_id,), at[rule_id])
    dimensions: dict[int, datetime] = {}
    for r in rules:
        note_use(dimensions, (r["template_dimension_id"], r["remove_dimension_id"]), at[r["pk"]])
    if dimensions:
        for pk, dim_id in Tag.objects.filter(dimension_id__in=dimensions).values_list(
                "pk", "dimension_id"):
            note_use(latest, (pk,), dimensions[dim_id])
    return latest
