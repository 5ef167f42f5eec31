"""Reads for insight: health findings, dashboard aggregates, tag analytics.

Everything here is set-based: one aggregate query per finding (a handful for
near-twins), whatever the number of contacts. The results are plain dicts of
JSON types, because reports and dashboard snapshots store them as JSON.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from urllib.parse import urlencode

from django.db import connection
from django.db.models import (
    Avg,
    Count,
    DecimalField,
    Exists,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from crm.models import Contact
from crm.selectors import reachable_q
from tagging.insight.conf import insight_setting
from tagging.insight.models import DashboardSnapshot, HealthReport
from tagging.insight.usage import Metric, extra_metrics, panels, tags_last_used
from tagging.models import (
    AssignmentHistory,
    Dimension,
    HistoryAction,
    Tag,
    TagAssignment,
    TagVersion,
    VersionAction,
)
from tagging.names import name_key

FINDING_KEYS = ["inactive", "overloaded", "count_health", "stale", "sleeping_vips", "near_twins",
                "orphans"]

# --- small helpers -----------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _days(delta: timedelta) -> int:
    return delta.days


def _activity():
    """When a contact was last active: its last interaction, else when it was created.

    A contact created yesterday that has not written yet is new, not asleep.
    """
    return Coalesce("last_interaction_at", "created_at")


def _tag_ref(tag: Tag) -> dict:
    return {"id": tag.pk, "name": tag.name, "dimension": tag.dimension.name,
            "colour": tag.display_colour}


def tag_admin_url(tag_id: int) -> str:
    return reverse("admin:tagging_tag_change", args=[tag_id])


def tags_admin_url(tag_ids: Iterable[int]) -> str:
    ids = ",".join(str(i) for i in sorted(set(tag_ids)))
    return f"{reverse('admin:tagging_tag_changelist')}?{urlencode({'id__in': ids})}"


def contacts_admin_url(**filters) -> str:
    """The contacts list with insight's filters (``InsightContactPart``) applied."""
    params = {f"insight_{k}": v for k, v in filters.items() if v not in (None, "")}
    return f"{reverse('admin:crm_contact_changelist')}?{urlencode(params)}"


def analytics_url(*, tags: Iterable[int] = (), dimension: int | None = None) -> str:
    params = {"tags": ",".join(str(t) for t in tags)} if tags else {"dimension": dimension}
    return f"{reverse('admin:insight_healthreport_analytics')}?{urlencode(params)}"


def active_tags() -> list[Tag]:
    return list(Tag.objects.filter(is_archived=False).select_related("dimension"))


def holders_by_tag() -> dict[int, int]:
    """Holders per tag in one GROUP BY over the assignments (the ``tag, contact`` index)."""
    rows = TagAssignment.objects.order_by().values("tag_id").annotate(n=Count("*"))
    return {r["tag_id"]: r["n"] for r in rows}


def activity_levels(contacts: QuerySet[Contact], *, now: datetime) -> dict[str, int]:
    """Contacts per activity level: high, needs watching, churn risk (one query)."""
    high = now - timedelta(days=insight_setting("ACTIVITY_HIGH_DAYS"))
    churn = now - timedelta(days=insight_setting("ACTIVITY_CHURN_DAYS"))
    return contacts.order_by().annotate(active=_activity()).aggregate(
        high=Count("pk", filter=Q(active__gt=high)),
        watching=Count("pk", filter=Q(active__lte=high, active__gt=churn)),
        churn=Count("pk", filter=Q(active__lte=churn)),
    )


def holding(tag_ids: Iterable[int], *, every: bool = True) -> Q:
    """Contacts holding every (or any) of ``tag_ids``, as an ``Exists`` condition."""
    tag_ids = list(tag_ids)
    if not every:
        return Q(Exists(TagAssignment.objects.filter(contact=OuterRef("pk"), tag_id__in=tag_ids)))
    q = Q()
    for tag_id in tag_ids:
        q &= Q(Exists(TagAssignment.objects.filter(contact=OuterRef("pk"), tag_id=tag_id)))
    return q


# --- health findings ------------------------------------------------------------------


def find_inactive(tags: list[Tag], *, now: datetime) -> list[dict]:
    """Tags not used for ``INACTIVE_DAYS`` or more → suggest archiving.

    A tag's last use is the latest over all usage providers (applied to a
    contact, used by an audience, segment or rule); a tag never used counts
    from its creation.
    """
    days = insight_setting("INACTIVE_DAYS")
    cutoff = now - timedelta(days=days)
    last = tags_last_used(since=cutoff)
    found = []
    for tag in tags:
        used_at, by = last.get(tag.pk, (None, ""))
        reference = max(used_at or tag.created_at, tag.created_at)
        if reference <= cutoff:
            found.append({**_tag_ref(tag), "last_used_at": _iso(used_at), "used_by": by,
                          "idle_days": _days(now - reference), "suggestion": "archive",
                          "url": tag_admin_url(tag.pk)})
    return sorted(found, key=lambda f: -f["idle_days"])


def find_overloaded(tags: list[Tag], holders: dict[int, int], total: int, *,
                    now: datetime) -> list[dict]:
    """Tags on more than ``OVERLOADED_SHARE`` of all contacts → suggest a split into ≥ 3.

    The holders' spread over activity levels seeds the split (low interaction /
    needs watching / high activity, as in the source's “General customer”).
    """
    limit = insight_setting("OVERLOADED_SHARE")
    found = []
    for tag in tags:
        n = holders.get(tag.pk, 0)
        if not total or n / total <= limit:
            continue
        found.append({
            **_tag_ref(tag), "holders": n, "share": round(n / total, 4),
            "suggested_split": [f"{tag.name} – {label}" for label in (
                _("high activity"), _("needs watching"), _("churn risk"))],
            "url": tag_admin_url(tag.pk),
            "contacts_url": contacts_admin_url(tag=tag.pk),
            "analytics_url": analytics_url(tags=[tag.pk]),
        })
    spreads = activity_levels_by_tag([f["id"] for f in found], now=now)
    for finding in found:
        finding["spread"] = spreads[finding["id"]]
    return sorted(found, key=lambda f: -f["share"])


def activity_levels_by_tag(tag_ids: list[int], *, now: datetime) -> dict[int, dict[str, int]]:
    """Holders of each tag per activity level, for all ``tag_ids`` in one query."""
    high = now - timedelta(days=insight_setting("ACTIVITY_HIGH_DAYS"))
    churn = now - timedelta(days=insight_setting("ACTIVITY_CHURN_DAYS"))
    rows = (
        TagAssignment.objects.order_by().filter(tag_id__in=tag_ids)
        .annotate(active=Coalesce("contact__last_interaction_at", "contact__created_at"))
        .values("tag_id")
        .annotate(high=Count("pk", filter=Q(active__gt=high)),
                  watching=Count("pk", filter=Q(active__lte=high, active__gt=churn)),
                  churn=Count("pk", filter=Q(active__lte=churn)))
    )
    empty = {"high": 0, "watching": 0, "churn": 0}
    out = {tag_id: dict(empty) for tag_id in tag_ids}
    for r in rows:
        out[r["tag_id"]] = {"high": r["high"], "watching": r["watching"], "churn": r["churn"]}
    return out


def count_band(n: int) -> str:
    if n < insight_setting("TAG_COUNT_MIN"):
        return "too_coarse"
    if n <= insight_setting("TAG_COUNT_MAX_HEALTHY"):
        return "healthy"
    if n <= insight_setting("TAG_COUNT_MAX"):
        return "large"
    return "hard_to_run"


def dimension_band(n: int) -> str:
    if n < insight_setting("DIMENSION_TAGS_MIN"):
        return "too_coarse"
    if n > insight_setting("DIMENSION_TAGS_MAX"):
        return "hard_to_run"
    return "healthy"


BAND_TEXT = {
    "too_coarse": gettext_noop("too coarse"),
    "healthy": gettext_noop("healthy"),
    "large": gettext_noop("large — watch it"),
    "hard_to_run": gettext_noop("hard to run"),
}


def find_count_health(tags: list[Tag]) -> dict:
    """Active tags against the bands 30–80 healthy, over 100 hard to run, under 30 too coarse."""
    by_dim: dict[int, list[Tag]] = defaultdict(list)
    for tag in tags:
        by_dim[tag.dimension_id].append(tag)
    dimensions = []
    for dim in Dimension.objects.all():
        members = sorted(by_dim.get(dim.pk, []), key=lambda t: t.name)
        dimensions.append({
            "id": dim.pk, "name": dim.name, "colour": dim.colour, "count": len(members),
            "band": dimension_band(len(members)), "tags": [t.name for t in members],
            "url": f"{reverse('admin:tagging_tag_changelist')}?"
                   f"{urlencode({'dimension__id__exact': dim.pk, 'is_archived__exact': 0})}",
        })
    return {
        "total": len(tags), "band": count_band(len(tags)),
        "bands": {"min": insight_setting("TAG_COUNT_MIN"),
                  "healthy_max": insight_setting("TAG_COUNT_MAX_HEALTHY"),
                  "max": insight_setting("TAG_COUNT_MAX")},
        "dimensions": dimensions,
        "tags": sorted(t.name for t in tags),
        "url": f"{reverse('admin:tagging_tag_changelist')}?is_archived__exact=0",
    }


def find_stale(tags: list[Tag], holders: dict[int, int], *, now: datetime) -> dict:
    """Assignments whose contact has had no interaction for ``STALE_DAYS`` or more, per tag."""
    days = insight_setting("STALE_DAYS")
    cutoff = now - timedelta(days=days)
    rows = (
        TagAssignment.objects.order_by()
        .annotate(active=Coalesce("contact__last_interaction_at", "contact__created_at"))
        .filter(active__lte=cutoff).values("tag_id").annotate(n=Count("*"))
    )
    stale = {r["tag_id"]: r["n"] for r in rows}
    per_tag = [
        {**_tag_ref(t), "stale": stale[t.pk], "holders": holders.get(t.pk, 0),
         "share": round(stale[t.pk] / holders[t.pk], 4) if holders.get(t.pk) else 0,
         "contacts_url": contacts_admin_url(tag=t.pk, idle=days)}
        for t in tags if stale.get(t.pk)
    ]
    total = sum(holders.get(t.pk, 0) for t in tags)
    stale_total = sum(f["stale"] for f in per_tag)
    return {
        "days": days, "assignments": total, "stale_assignments": stale_total,
        "share": round(stale_total / total, 4) if total else 0,
        "tags": sorted(per_tag, key=lambda f: -f["stale"]),
    }


def vip_tags() -> list[Tag]:
    """VIP-like tags of the purchasing-power dimension (name key matches ``VIP_TAG_PATTERN``)."""
    dim_key = name_key(insight_setting("PURCHASING_POWER_DIMENSION"))
    pattern = re.compile(insight_setting("VIP_TAG_PATTERN"), re.I)
    return [t for t in Tag.objects.filter(dimension__name_key=dim_key, is_archived=False)
            .select_related("dimension") if pattern.search(t.name_key)]


def reactivation_tag() -> Tag | None:
    key = name_key(insight_setting("REACTIVATION_TAG"))
    return Tag.objects.select_related("dimension").filter(name_key=key).first()


def sleeping_vips(*, now: datetime) -> QuerySet[Contact]:
    """Contacts holding a VIP-like tag with no interaction for ``STALE_DAYS`` or more."""
    vips = [t.pk for t in vip_tags()]
    if not vips:
        return Contact.objects.none()
    cutoff = now - timedelta(days=insight_setting("STALE_DAYS"))
    return (Contact.objects.annotate(active=_activity())
            .filter(holding(vips, every=False), active__lte=cutoff))


def find_sleeping_vips(*, now: datetime) -> dict:
    tags = vip_tags()
    target = reactivation_tag()
    days = insight_setting("STALE_DAYS")
    cutoff = now - timedelta(days=days)
    by_tag = []
    vip_holders = 0
    if tags:
        rows = (
            TagAssignment.objects.order_by().filter(tag__in=tags)
            .annotate(active=Coalesce("contact__last_interaction_at", "contact__created_at"))
            .values("tag_id")
            .annotate(holders=Count("*"), sleeping=Count("pk", filter=Q(active__lte=cutoff)))
        )
        counts = {r["tag_id"]: r for r in rows}
        for tag in tags:
            row = counts.get(tag.pk, {"holders": 0, "sleeping": 0})
            by_tag.append({**_tag_ref(tag), "holders": row["holders"],
                           "sleeping": row["sleeping"],
                           "contacts_url": contacts_admin_url(tag=tag.pk, idle=days)})
        vip_holders = Contact.objects.filter(holding([t.pk for t in tags], every=False)).count()
    count = sleeping_vips(now=now).count()
    return {
        "days": days, "count": count, "vip_holders": vip_holders,
        "share": round(count / vip_holders, 4) if vip_holders else 0,
        "tags": by_tag,
        "target": target.name if target else insight_setting("REACTIVATION_TAG"),
        "target_exists": bool(target and not target.is_archived),
    }


def levenshtein(a: str, b: str, limit: int | None = None) -> int:
    """Edit distance of two short strings; stops early once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > (limit if limit is not None else len(a) + len(b)):
        return abs(len(a) - len(b))
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        if limit is not None and min(current) > limit:
            return min(current)
        previous = current
    return previous[-1]


_DIGITS = re.compile(r"\d+")


def _short_key(tag: Tag) -> str:
    """The name key without its dimension's name in front (“Kaufphase-Bestellt” → “bestellt”)."""
    key, dim = tag.name_key, tag.dimension.name_key
    return key[len(dim):] if key.startswith(dim) and len(key) > len(dim) else key


def find_near_twins(tags: list[Tag], holders: dict[int, int]) -> list[dict]:
    """Merge candidates: names alike or near, configured synonyms, or holders overlapping ≥ 90%.

    Names are compared without their dimension's name in front; "near" is an
    edit distance of at most ``TWIN_MAX_DISTANCE`` (and one edit per three letters).

    Overlap is |A ∩ B| / |A ∪ B|, so a small tag inside a big one (SVIP inside
    “high-value customer”) is not a twin; only pairs whose sizes are within
    the threshold of each other can reach it, and only those are counted.
    """
    max_distance = insight_setting("TWIN_MAX_DISTANCE")
    min_length = insight_setting("TWIN_MIN_KEY_LENGTH")
    overlap_limit = insight_setting("TWIN_OVERLAP")
    synonyms = {frozenset(name_key(n) for n in pair)
                for pair in insight_setting("TWIN_SYNONYMS")}
    found: dict[frozenset, dict] = {}

    def add(a: Tag, b: Tag, reason: str, **extra) -> None:
        key = frozenset((a.pk, b.pk))
        entry = found.setdefault(key, {
            "tags": [a.name, b.name], "tag_ids": [a.pk, b.pk], "reasons": [],
            "holders": [holders.get(a.pk, 0), holders.get(b.pk, 0)],
            "url": tags_admin_url([a.pk, b.pk]),
        })
        entry["reasons"].append(reason)
        entry.update(extra)

    for a, b in combinations(sorted(tags, key=lambda t: t.pk), 2):
        if frozenset((a.name_key, b.name_key)) in synonyms:
            add(a, b, "synonym")
        short_a, short_b = _short_key(a), _short_key(b)
        if short_a == short_b:
            add(a, b, "same_name")
        elif _DIGITS.sub("", short_a) == _DIGITS.sub("", short_b):
            pass  # a numbered series ("Kampagne 2024" / "Kampagne 2025") is deliberate
        elif min(len(short_a), len(short_b)) >= min_length:
            # Short words are near by accident ("Essen"/"Reisen"): allow one edit per
            # three letters of the shorter name, and never more than the setting.
            allowed = min(max_distance, min(len(short_a), len(short_b)) // 3)
            distance = levenshtein(short_a, short_b, allowed)
            if distance <= allowed:
                add(a, b, "near_name", distance=distance)
    by_id = {t.pk: t for t in tags}
    for (a_id, b_id), both in overlapping_pairs(holders, set(by_id), overlap_limit).items():
        overlap = both / (holders[a_id] + holders[b_id] - both)
        if overlap >= overlap_limit:
            add(by_id[a_id], by_id[b_id], "overlap", overlap=round(overlap, 4), both=both)
    return list(found.values())


SAMPLE_ASSIGNMENTS = 200_000


def _pair_counts(where: str, params: list) -> dict[tuple[int, int], int]:
    a = connection.ops.quote_name(TagAssignment._meta.db_table)
    sql = (f"SELECT x.tag_id, y.tag_id, COUNT(*) FROM {a} x JOIN {a} y "
           f"ON x.contact_id = y.contact_id AND x.tag_id < y.tag_id "
           f"WHERE {where} GROUP BY x.tag_id, y.tag_id")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(x, y): n for x, y, n in cursor.fetchall()}


def overlapping_pairs(holders: dict[int, int], tag_ids: set[int],
                      limit: float) -> dict[tuple[int, int], int]:
    """Shared holders of the tag pairs that may overlap ``limit`` or more (Jaccard).

    Only pairs whose sizes are within ``limit`` of each other can get there.
    On a large base a sample of contacts (``id % k = 0``, ~200,000
    assignments) finds the candidates in one self-join; only those are then
    counted exactly, one pair at a time.
    """
    total = sum(holders.get(t, 0) for t in tag_ids)
    if not total:
        return {}
    step = max(1, total // SAMPLE_ASSIGNMENTS)

    def sizes_fit(x: int, y: int) -> bool:
        size_x, size_y = holders.get(x, 0), holders.get(y, 0)
        return bool(size_x and size_y) and min(size_x, size_y) / max(size_x, size_y) >= limit

    if step == 1:
        counts = _pair_counts("1 = 1", [])
        return {pair: n for pair, n in counts.items()
                if pair[0] in tag_ids and pair[1] in tag_ids and sizes_fit(*pair)}
    sampled = _pair_counts("x.contact_id %% %s = 0", [step])
    sample_sizes = dict(
        TagAssignment.objects.order_by().extra(where=["contact_id %% %s = 0"], params=[step])
        .values("tag_id").annotate(n=Count("*")).values_list("tag_id", "n"))
    exact = {}
    for (x, y), both in sampled.items():
        if x not in tag_ids or y not in tag_ids or not sizes_fit(x, y):
            continue
        estimate = both / max(sample_sizes.get(x, 0) + sample_sizes.get(y, 0) - both, 1)
        if estimate >= limit - 0.1:  # generous: a sample misses by a few points at most
            exact[(x, y)] = TagAssignment.objects.filter(
                tag_id=x,
                contact_id__in=TagAssignment.objects.filter(tag_id=y).values("contact_id"),
            ).count()
    return exact


def find_orphans(tags: list[Tag], holders: dict[int, int]) -> list[dict]:
    return [{**_tag_ref(t), "url": tag_admin_url(t.pk)} for t in tags if not holders.get(t.pk)]


def quarter_start(now: datetime) -> datetime:
    local = timezone.localtime(now)
    month = 3 * ((local.month - 1) // 3) + 1
    return local.replace(month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


def find_vocabulary_churn(*, now: datetime) -> dict:
    """Tags added and retired this quarter, from the tag version log."""
    start = quarter_start(now)
    entries = TagVersion.objects.filter(object_type="tag", at__gte=start, at__lte=now)
    retired_actions = [VersionAction.ARCHIVED, VersionAction.DELETED, VersionAction.MERGED]

    def rows(actions):
        return [{"id": e.object_id, "name": e.object_name, "action": e.action,
                 "at": _iso(e.at), "reason": e.reason}
                for e in entries.filter(action__in=actions).order_by("at")]

    return {"quarter": f"{start.year}-Q{(start.month - 1) // 3 + 1}", "since": _iso(start),
            "added": rows([VersionAction.CREATED]), "retired": rows(retired_actions),
            "url": f"{reverse('admin:tagging_tagversion_changelist')}?"
                   f"{urlencode({'object_type__exact': 'tag', 'at__date__gte': start.date()})}"}


def _seconds_between(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def find_lifetimes(tags: list[Tag], *, now: datetime) -> list[dict]:
    """Average lifetime of an ended assignment per tag (added → removed, from the history),

    beside the average age of the assignments still held. The source expects
    ~90 days; this is the real one.
    """
    h = connection.ops.quote_name(AssignmentHistory._meta.db_table)
    a = connection.ops.quote_name(TagAssignment._meta.db_table)
    ended_sql = f"""
        SELECT tag_id, COUNT(*), AVG(seconds) FROM (
            SELECT tag_id, action,
                   LAG(action) OVER w AS previous_action,
                   {_seconds_between("at", "LAG(at) OVER w")} AS seconds
            FROM {h}
            WINDOW w AS (PARTITION BY contact_id, tag_id ORDER BY at, id)
        ) pairs
        WHERE action = %s AND previous_action = %s
        GROUP BY tag_id
    """
    now_db = TagAssignment._meta.get_field("assigned_at").get_db_prep_value(now, connection)
    open_sql = (f"SELECT tag_id, COUNT(*), AVG({_seconds_between('%s', 'assigned_at')}) "
                f"FROM {a} GROUP BY tag_id")
    with connection.cursor() as cursor:
        cursor.execute(ended_sql, [HistoryAction.REMOVED, HistoryAction.ADDED])
        ended = {row[0]: (row[1], float(row[2] or 0)) for row in cursor.fetchall()}
        cursor.execute(open_sql, [now_db])
        held = {row[0]: (row[1], float(row[2] or 0)) for row in cursor.fetchall()}
    out = []
    for tag in tags:
        n_ended, ended_s = ended.get(tag.pk, (0, 0.0))
        n_open, open_s = held.get(tag.pk, (0, 0.0))
        out.append({**_tag_ref(tag), "ended": n_ended,
                    "avg_days": round(ended_s / 86400, 1) if n_ended else None,
                    "open": n_open, "open_avg_days": round(open_s / 86400, 1) if n_open else None})
    return out


def health_findings(*, now: datetime | None = None) -> dict:
    """Compute every finding of the tag health report (JSON types only)."""
    now = now or timezone.now()
    tags = active_tags()
    holders = holders_by_tag()
    total = Contact.objects.count()
    findings = {
        "generated_at": _iso(now),
        "contacts": total,
        "active_tags": len(tags),
        "settings": {k: insight_setting(k) for k in (
            "INACTIVE_DAYS", "OVERLOADED_SHARE", "STALE_DAYS", "TWIN_OVERLAP",
            "TWIN_MAX_DISTANCE")},
        "inactive": find_inactive(tags, now=now),
        "overloaded": find_overloaded(tags, holders, total, now=now),
        "count_health": find_count_health(tags),
        "stale": find_stale(tags, holders, now=now),
        "sleeping_vips": find_sleeping_vips(now=now),
        "near_twins": find_near_twins(tags, holders),
        "orphans": find_orphans(tags, holders),
        "vocabulary": find_vocabulary_churn(now=now),
        "lifetimes": find_lifetimes(tags, now=now),
    }
    return findings


def findings_summary(findings: dict) -> dict:
    """Counts per finding and the names behind them, the basis of week-to-week comparisons."""
    return {
        "inactive": sorted(f["name"] for f in findings["inactive"]),
        "overloaded": sorted(f["name"] for f in findings["overloaded"]),
        "stale": sorted(f["name"] for f in findings["stale"]["tags"]),
        "stale_assignments": findings["stale"]["stale_assignments"],
        "sleeping_vips": findings["sleeping_vips"]["count"],
        "near_twins": sorted(" ≈ ".join(sorted(t["tags"])) for t in findings["near_twins"]),
        "orphans": sorted(f["name"] for f in findings["orphans"]),
        "active_tags": findings["active_tags"],
        "count_band": findings["count_health"]["band"],
        "contacts": findings["contacts"],
    }


def report_headline(summary: dict) -> list[str]:
    """Short sentences for the dashboard and the e-mail subject line."""
    lines = [
        _("%(n)d active tags (%(band)s).") % {"n": summary.get("active_tags", 0),
                                               "band": _(BAND_TEXT.get(summary.get("count_band"),
                                                                       "—"))},
    ]
    for key, text in [
        ("inactive", _("%(n)d inactive — archive?")),
        ("overloaded", _("%(n)d overloaded — split?")),
        ("near_twins", _("%(n)d near-twin pairs — merge?")),
        ("orphans", _("%(n)d without holders")),
    ]:
        if summary.get(key):
            lines.append(text % {"n": len(summary[key])})
    if summary.get("sleeping_vips"):
        lines.append(_("%(n)d sleeping VIPs to reactivate") % {"n": summary["sleeping_vips"]})
    if summary.get("stale_assignments"):
        lines.append(_("%(n)d stale assignments") % {"n": summary["stale_assignments"]})
    return lines


@dataclass
class Change:
    label: str
    previous: int | str | None
    current: int | str
    appeared: list[str]
    resolved: list[str]

    @property
    def delta(self) -> int | None:
        if isinstance(self.current, int) and isinstance(self.previous, int):
            return self.current - self.previous
        return None


def report_previous(report: HealthReport) -> HealthReport | None:
    return (HealthReport.objects.filter(created_at__lt=report.created_at)
            .order_by("-created_at", "-id").first())


def report_comparison(report: HealthReport, previous: HealthReport | None) -> list[Change]:
    """What changed since the previous report: counts, and the tags that appeared or resolved."""
    now, before = report.summary, previous.summary if previous else {}
    changes = []
    for key, label in [("inactive", _("Inactive tags")), ("overloaded", _("Overloaded tags")),
                       ("near_twins", _("Near-twin pairs")), ("orphans", _("Tags without holders")),
                       ("stale", _("Tags with stale assignments"))]:
        current, old = set(now.get(key, [])), set(before.get(key, []))
        changes.append(Change(label, len(old) if previous else None, len(current),
                              sorted(current - old) if previous else [],
                              sorted(old - current)))
    for key, label in [("stale_assignments", _("Stale assignments")),
                       ("sleeping_vips", _("Sleeping VIPs")), ("active_tags", _("Active tags")),
                       ("contacts", _("Contacts"))]:
        changes.append(Change(label, before.get(key) if previous else None, now.get(key, 0), [],
                              []))
    return changes


def report_latest() -> HealthReport | None:
    return HealthReport.objects.order_by("-created_at", "-id").first()


# --- dashboard ----------------------------------------------------------------------


def _week_points(now: datetime, weeks: int) -> list[datetime]:
    return [now - timedelta(weeks=k) for k in range(weeks - 1, -1, -1)]


def holdings_series(tag_ids: list[int], points: list[datetime]) -> list[int]:
    """Holdings of ``tag_ids`` at each point in time, counted back from today.

    Holders then = holders now − added since + removed since. Counting back
    from the present keeps the series right even for assignments older than
    the history (imported before it was written).
    """
    if not tag_ids:
        return [0 for _ in points]
    current = TagAssignment.objects.filter(tag_id__in=tag_ids).count()
    since = min(points)
    history = AssignmentHistory.objects.order_by().filter(tag_id__in=tag_ids, at__gt=since)
    aggregates = {}
    for i, point in enumerate(points):
        aggregates[f"a{i}"] = Count("pk", filter=Q(at__gt=point, action=HistoryAction.ADDED))
        aggregates[f"r{i}"] = Count("pk", filter=Q(at__gt=point, action=HistoryAction.REMOVED))
    counts = history.aggregate(**aggregates)
    return [current - counts[f"a{i}"] + counts[f"r{i}"] for i in range(len(points))]


def contacts_series(points: list[datetime]) -> list[int]:
    aggregates = {f"c{i}": Count("pk", filter=Q(created_at__lte=p)) for i, p in enumerate(points)}
    counts = Contact.objects.order_by().aggregate(**aggregates)
    return [counts[f"c{i}"] for i in range(len(points))]


def churn_trend(*, now: datetime) -> dict:
    """Share of contacts holding a churn-risk tag at the end of each of the last weeks."""
    weeks = insight_setting("TREND_WEEKS")
    keys = [name_key(n) for n in insight_setting("CHURN_TAGS")]
    tags = list(Tag.objects.filter(name_key__in=keys))
    points = _week_points(now, weeks)
    holdings = holdings_series([t.pk for t in tags], points)
    contacts = contacts_series(points)
    # Before the tags' first recorded change the weeks are unknown, not 0 %: the page says so.
    start = (AssignmentHistory.objects.filter(tag_id__in=[t.pk for t in tags])
             .aggregate(first=Min("at"))["first"]) if tags else None
    return {
        "tags": [t.name for t in tags],
        "history_start": _iso(start),
        "points": [{"at": _iso(p), "label": timezone.localtime(p).strftime("%d.%m."),
                    "holders": h, "contacts": c, "rate": round(h / c, 4) if c else 0}
                   for p, h, c in zip(points, holdings, contacts, strict=True)],
    }


def dashboard_data(*, now: datetime | None = None) -> dict:
    """All dashboard aggregates (JSON types): computed by beat, read by the page."""
    now = now or timezone.now()
    week_ago = now - timedelta(days=7)
    contacts = Contact.objects.order_by().aggregate(
        total=Count("pk"),
        consented=Count("pk", filter=reachable_q(marketing=True)),
        new_week=Count("pk", filter=Q(created_at__gt=week_ago)),
    )
    total = contacts["total"]
    holders = holders_by_tag()
    by_dim: dict[int, list[dict]] = defaultdict(list)
    for tag in Tag.objects.filter(is_archived=False).select_related("dimension"):
        n = holders.get(tag.pk, 0)
        by_dim[tag.dimension_id].append({
            "id": tag.pk, "name": tag.name, "symbol": tag.symbol, "colour": tag.display_colour,
            "holders": n, "share": round(n / total, 4) if total else 0,
        })
    dimensions = [
        {"id": d.pk, "name": d.name, "colour": d.colour, "single_choice": d.single_choice,
         "tags": sorted(by_dim.get(d.pk, []), key=lambda t: -t["holders"])}
        for d in Dimension.objects.all()
    ]
    data = {
        "generated_at": _iso(now),
        "contacts": {**contacts,
                     "consented_share": round(contacts["consented"] / total, 4) if total else 0},
        "activity": activity_levels(Contact.objects.all(), now=now),
        "activity_days": {"high": insight_setting("ACTIVITY_HIGH_DAYS"),
                          "churn": insight_setting("ACTIVITY_CHURN_DAYS")},
        "dimensions": dimensions,
        "churn": churn_trend(now=now),
        "panels": [],
    }
    for panel in panels():
        entry = {"key": panel.key, "title": str(panel.title)}
        try:
            entry["data"] = panel.compute(now=now)
        except Exception as exc:  # one broken panel must not take the dashboard down
            entry["error"] = f"{type(exc).__name__}: {exc}"
        data["panels"].append(entry)
    return data


def dashboard_snapshot_latest() -> DashboardSnapshot | None:
    return DashboardSnapshot.objects.order_by("-created_at", "-id").first()


# --- tag analytics ---------------------------------------------------------------------


@dataclass
class Subject:
    """What the analytics page looks at: a tag combination (all held) or a dimension (any)."""

    label: str
    tags: list[Tag]
    dimension: Dimension | None = None

    @property
    def condition(self) -> Q:
        return holding([t.pk for t in self.tags], every=self.dimension is None)


def analytics_subject(*, tag_ids: list[int] | None = None,
                      dimension_id: int | None = None) -> Subject | None:
    if dimension_id:
        dimension = Dimension.objects.filter(pk=dimension_id).first()
        if dimension is None:
            return None
        tags = list(dimension.tags.select_related("dimension").order_by("name"))
        return Subject(dimension.name, tags, dimension)
    tags = list(Tag.objects.select_related("dimension").filter(pk__in=tag_ids or []))
    if not tags:
        return None
    return Subject(" + ".join(t.name for t in tags), tags)


def holder_metrics(subject: Subject, *, now: datetime | None = None) -> list[Metric]:
    """Holders vs everybody else: purchase frequency, revenue, read and reply rates.

    Two aggregate queries: one over the holders (a semi-join on the
    assignments) and one over all contacts; everybody else is the difference.
    (One query with the holding test inside every ``FILTER`` would evaluate it
    once per aggregate and contact.) Apps registered with
    ``register_metric_provider`` (campaigns) add their rates after it.
    """
    now = now or timezone.now()
    recent = now - timedelta(days=30)
    money = DecimalField(max_digits=16, decimal_places=2)
    aggregates = {
        "n": Count("pk"),
        "buyers": Count("pk", filter=Q(purchase_count__gt=0)),
        "purchases": Coalesce(Sum("purchase_count"), 0),
        "revenue": Coalesce(Sum("total_spent"), Value(0), output_field=money),
        "read": Count("pk", filter=Q(last_read_at__gte=recent)),
        "reply": Count("pk", filter=Q(last_reply_at__gte=recent)),
        "consent": Count("pk", filter=reachable_q(marketing=True)),
    }
    held = Contact.objects.order_by().filter(subject.condition).aggregate(**aggregates)
    everybody = Contact.objects.order_by().aggregate(**aggregates)
    r = {}
    for key in aggregates:
        r[f"h_{key}"] = held[key]
        r[f"o_{key}"] = everybody[key] - held[key]

    def per(side: str, key: str) -> float | None:
        n = r[f"{side}_n"]
        return round(float(r[f"{side}_{key}"]) / n, 4) if n else None

    total_revenue = float(r["h_revenue"]) + float(r["o_revenue"])
    metrics = [
        Metric(_("Contacts"), r["h_n"], r["o_n"]),
        Metric(_("Bought at least once (conversion)"), per("h", "buyers"), per("o", "buyers"),
               "%"),
        Metric(_("Purchases per contact (frequency)"), per("h", "purchases"),
               per("o", "purchases")),
        Metric(_("Revenue per contact"), per("h", "revenue"), per("o", "revenue"), "money"),
        Metric(_("Revenue in all"), float(r["h_revenue"]), float(r["o_revenue"]), "money"),
        Metric(_("Share of revenue"),
               round(float(r["h_revenue"]) / total_revenue, 4) if total_revenue else None,
               round(float(r["o_revenue"]) / total_revenue, 4) if total_revenue else None, "%"),
        Metric(_("Read a message in the last 30 days"), per("h", "read"), per("o", "read"), "%"),
        Metric(_("Replied in the last 30 days"), per("h", "reply"), per("o", "reply"), "%"),
        Metric(_("Marketing consent"), per("h", "consent"), per("o", "consent"), "%"),
    ]
    holders = Contact.objects.filter(subject.condition)
    others = Contact.objects.exclude(subject.condition)
    return metrics + extra_metrics(holders=holders, others=others)


def tag_breakdown(tags: list[Tag], *, now: datetime | None = None) -> list[dict]:
    """Per tag: holders, conversion, purchase frequency, revenue, read and reply rates."""
    now = now or timezone.now()
    recent = now - timedelta(days=30)
    rows = (
        TagAssignment.objects.order_by().filter(tag__in=tags).values("tag_id")
        .annotate(holders=Count("*"),
                  buyers=Count("pk", filter=Q(contact__purchase_count__gt=0)),
                  purchases=Avg("contact__purchase_count"),
                  revenue=Sum("contact__total_spent"),
                  read=Count("pk", filter=Q(contact__last_read_at__gte=recent)),
                  reply=Count("pk", filter=Q(contact__last_reply_at__gte=recent)))
    )
    by_tag = {r["tag_id"]: r for r in rows}
    out = []
    for tag in tags:
        r = by_tag.get(tag.pk)
        n = r["holders"] if r else 0
        out.append({
            **_tag_ref(tag), "holders": n,
            "conversion": round(r["buyers"] / n, 4) if n else None,
            "frequency": round(float(r["purchases"] or 0), 2) if n else None,
            "revenue": float(r["revenue"] or 0) if n else 0.0,
            "revenue_per_contact": round(float(r["revenue"] or 0) / n, 2) if n else None,
            "read_rate": round(r["read"] / n, 4) if n else None,
            "reply_rate": round(r["reply"] / n, 4) if n else None,
        })
    return out


def holders_over_time(tags: list[Tag], *, now: datetime | None = None,
                      weeks: int = 12) -> dict:
    now = now or timezone.now()
    points = _week_points(now, weeks)
    return {
        "labels": [timezone.localtime(p).strftime("%d.%m.") for p in points],
        "series": [{"name": t.name, "colour": t.display_colour,
                    "values": holdings_series([t.pk], points)} for t in tags],
    }
