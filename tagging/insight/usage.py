"""The registries other apps plug into: tag usage, dashboard panels and tag metrics.

``tagging`` may not import ``campaigns`` or the rules and audiences apps, so
they tell insight what they know by registering callables here from their
``AppConfig.ready()``::

    # campaigns/apps.py
    def ready(self):
        from tagging.insight import usage
        from campaigns import insight

        usage.register_usage_provider("campaigns", insight.tag_last_used, _("a campaign"))
        usage.register_panel(usage.Panel("campaigns", _("Recent campaigns"),
                                         insight.recent_campaigns_panel, order=10))
        usage.register_metric_provider("campaigns", insight.rates_by_holders)

Registering the same name again replaces the earlier entry, so an app can
swap a built-in provider (the built-in ``rules`` panel reads the assignment
history; the rules app may register a richer one under the same name).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm.models import Contact
from tagging.audiences.language import tags_used_by
from tagging.audiences.models import Segment
from tagging.models import AssignmentHistory, HistoryAction, Source, Tag, TagVersion, VersionAction

# --- Tag usage ---------------------------------------------------------------

UsageProvider = Callable[..., Mapping[int, datetime]]
"""``provider(*, since: datetime) -> {tag_id: last_used_at}``.

Return the latest moment each tag was used (a campaign audience, segment or
rule evaluated it; a tag was applied). Tags last used before ``since`` may be
left out; insight treats a missing tag as "not used since ``since``".
"""

_usage_providers: dict[str, UsageProvider] = {}
_usage_labels: dict[str, Any] = {}


def register_usage_provider(name: str, provider: UsageProvider, label: Any = None) -> None:
    """``label``: what the health report says used the tag last, e.g. ``_("a rule")``."""
    _usage_providers[name] = provider
    if label is not None:
        _usage_labels[name] = label


def unregister_usage_provider(name: str) -> None:
    _usage_providers.pop(name, None)
    _usage_labels.pop(name, None)


def usage_label(name: str) -> str:
    """The words for a provider's name (stored in reports), in the reader's language."""
    return str(_usage_labels.get(name, name))


def tags_last_used(*, since: datetime) -> dict[int, tuple[datetime, str]]:
    """Latest use of every tag over all providers, with the name of the provider that saw it."""
    latest: dict[int, tuple[datetime, str]] = {}
    for name, provider in _usage_providers.items():
        for tag_id, at in provider(since=since).items():
            if at is not None and (tag_id not in latest or at > latest[tag_id][0]):
                latest[tag_id] = (at, name)
    return latest


def applied_last(*, since: datetime) -> dict[int, datetime]:
    """Built-in provider: when each tag was last applied to anyone (assignment history).

    One index-backed lookup per tag (``tagging_hist_tag_at``), not a scan of the log.
    """
    last_added = (
        AssignmentHistory.objects.filter(tag=OuterRef("pk"), action=HistoryAction.ADDED)
        .order_by("-at").values("at")[:1]
    )
    rows = Tag.objects.order_by().annotate(last=Subquery(last_added)).values_list("pk", "last")
    return {pk: last for pk, last in rows if last is not None}


def vocabulary_last(*, since: datetime) -> dict[int, datetime]:
    """Built-in provider: a tag created, restored, renamed or merged into counts as used then.

    A tag an administrator just touched is not yet a candidate for archiving.
    """
    rows = (
        TagVersion.objects.filter(object_type="tag", at__gte=since)
        .exclude(action__in=[VersionAction.ARCHIVED, VersionAction.DELETED])
        .values("object_id").annotate(last=Max("at")).values_list("object_id", "last")
    )
    return dict(rows)


def segments_last(*, since: datetime) -> dict[int, datetime]:
    """Built-in provider: a saved segment naming a tag uses it, at its last count or edit.

    Registered here rather than by the audiences app, which sits below insight
    and may not import it. One query for the segments, one for the vocabulary.
    """
    rows = Segment.objects.values_list("expression", "counted_at", "updated_at")
    return tags_used_by((text, max(d for d in (counted, updated) if d is not None))
                        for text, counted, updated in rows)


register_usage_provider("applied", applied_last, gettext_lazy("applied to a contact"))
register_usage_provider("vocabulary", vocabulary_last,
                        gettext_lazy("created or changed in the vocabulary"))
register_usage_provider("segments", segments_last, gettext_lazy("a saved segment"))


# --- Dashboard panels ----------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    """A dashboard panel computed when the dashboard snapshot is refreshed (by beat).

    ``compute(now=datetime)`` returns a JSON-serialisable dict::

        {"columns": ["Campaign", "Delivered", ...],
         "rows": [["Spring sale", {"value": 0.97, "band": "warn", "text": "97%"}, ...]],
         "empty": "No campaign sent in the last 30 days.",
         "link": {"url": "/admin/campaigns/campaign/", "label": "All campaigns"}}

    A cell is a string or number, or a dict with ``text`` and an optional
    ``band`` (``good``/``warn``/``bad``, see ``rate_band``) and ``url``.
    The page shows the stored result; it never calls ``compute`` itself.
    """

    key: str
    title: Any
    compute: Callable[..., dict]
    order: int = 50
    placeholder: Any = ""


_panels: dict[str, Panel] = {}


def register_panel(panel: Panel) -> None:
    _panels[panel.key] = panel


def unregister_panel(key: str) -> None:
    _panels.pop(key, None)


def panels() -> list[Panel]:
    return sorted(_panels.values(), key=lambda p: (p.order, p.key))


# Rates against the source's thresholds (PRODUCT.md §8): (good at or above, bad below).
RATE_THRESHOLDS = {
    "delivery": (0.98, 0.95),
    "read": (0.70, 0.60),
    "reply": (0.05, 0.02),
}


def rate_band(kind: str, value: float | None) -> str:
    """``good``, ``warn`` or ``bad`` for a delivery, read or reply rate (0–1)."""
    if value is None:
        return ""
    good, bad = RATE_THRESHOLDS[kind]
    return "good" if value >= good else "bad" if value < bad else "warn"


def _source_changes_panel(reason: str, empty: str, days: int = 7) -> Callable[..., dict]:
    def compute(*, now: datetime) -> dict:
        rows = (
            AssignmentHistory.objects.filter(reason=reason, at__gte=now - timedelta(days=days))
            .order_by().values("source_ref")
            .annotate(added=Count("pk", filter=Q(action=HistoryAction.ADDED)),
                      removed=Count("pk", filter=Q(action=HistoryAction.REMOVED)),
                      contacts=Count("contact_id", distinct=True), last=Max("at"))
            .order_by("-last")[:8]
        )
        return {
            "columns": [_("Source"), _("Last run"), _("Contacts"), _("Tags added"),
                        _("Tags removed")],
            "rows": [[r["source_ref"] or "—", {"text": r["last"].strftime("%Y-%m-%d %H:%M")},
                      r["contacts"], r["added"], r["removed"]] for r in rows],
            "empty": str(empty),
            "link": {"url": f"/admin/tagging/assignmenthistory/?reason__exact={reason}",
                     "label": _("Assignment history")},
        }

    return compute


register_panel(Panel(
    "rules", gettext_lazy("Rules: what they changed in the last 7 days"),
    _source_changes_panel(Source.RULE, gettext_lazy("No rule changed a tag in the last 7 days.")),
    order=20,
))


# --- Tag metrics (analytics) ------------------------------------------------------


@dataclass
class Metric:
    """One line of the holders-vs-others comparison; values are numbers or None."""

    label: str
    holders: float | None
    others: float | None
    unit: str = ""  # "%", "€", "" — how the page formats it
    note: str = field(default="")


MetricProvider = Callable[..., list[Metric]]
"""``provider(*, holders: QuerySet[Contact], others: QuerySet[Contact]) -> list[Metric]``.

Campaigns register one that splits delivery, read, reply and conversion rates
of their sends by whether the recipient holds the tag (combination).
"""

_metric_providers: dict[str, MetricProvider] = {}


def register_metric_provider(name: str, provider: MetricProvider) -> None:
    _metric_providers[name] = provider


def unregister_metric_provider(name: str) -> None:
    _metric_providers.pop(name, None)


def extra_metrics(*, holders: QuerySet[Contact], others: QuerySet[Contact]) -> list[Metric]:
    metrics: list[Metric] = []
    for provider in _metric_providers.values():
        metrics.extend(provider(holders=holders, others=others))
    return metrics
