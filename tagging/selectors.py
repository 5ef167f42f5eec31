"""Reads on tags and assignments."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncWeek
from django.utils import timezone

from crm.models import Contact
from tagging.models import AssignmentHistory, Dimension, Tag, TagAssignment
from tagging.names import name_key


def holders_subquery(**outer) -> Coalesce:
    """Number of contacts holding the tag (``tag=OuterRef('pk')``), counted per row shown."""
    counted = (
        TagAssignment.objects.filter(**outer).order_by().values(*outer)
        .annotate(n=Count("*")).values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def tags_with_counts() -> QuerySet[Tag]:
    return Tag.objects.select_related("dimension").annotate(
        holders=holders_subquery(tag=OuterRef("pk"))
    )


def dimensions_with_counts() -> QuerySet[Dimension]:
    return Dimension.objects.annotate(
        tag_count=Count("tags", distinct=True),
        holders=holders_subquery(tag__dimension=OuterRef("pk")),
    )


def contacts_with_tags(queryset: QuerySet[Contact] | None = None) -> QuerySet[Contact]:
    """Contacts with their assignments, tags and dimensions in two extra queries in all."""
    queryset = Contact.objects.all() if queryset is None else queryset
    return queryset.prefetch_related(
        Prefetch(
            "tag_assignments",
            queryset=TagAssignment.objects.select_related("tag__dimension").order_by(
                "tag__dimension__order", "tag__name"
            ),
        )
    )


def tags_by_name(names: list[str]) -> tuple[list[Tag], list[str]]:
    """Tags for ``names`` compared as the vocabulary compares them; also the names not found."""
    keys = {name_key(n): n for n in names if n.strip()}
    found = {t.name_key: t for t in Tag.objects.select_related("dimension")
             .filter(name_key__in=keys)}
    return [found[k] for k in keys if k in found], [n for k, n in keys.items() if k not in found]


def tag_weekly_changes(tag: Tag, weeks: int = 12) -> list[dict]:
    """Contacts that got and lost ``tag`` per week, newest first (from assignment history).

    One grouped query over the (tag, at) index, whatever the number of rows.
    """
    since = timezone.now() - timedelta(weeks=weeks)
    rows = (
        AssignmentHistory.objects.filter(tag=tag, at__gte=since).order_by()
        .annotate(week=TruncWeek("at")).values("week", "action").annotate(n=Count("*"))
    )
    weekly: dict = {}
    for row in rows:
        entry = weekly.setdefault(row["week"], {"week": row["week"], "added": 0, "removed": 0})
        entry[row["action"]] = row["n"]
    return sorted(weekly.values(), key=lambda e: e["week"], reverse=True)


# --- Privacy: a contact's tags and their history (crm.privacy) ----------------------------

def contact_tags_export(contact: Contact) -> list[dict]:
    rows = (TagAssignment.objects.filter(contact=contact).select_related("tag__dimension")
            .order_by("assigned_at"))
    return [{"tag": a.tag.name, "dimension": a.tag.dimension.name,
             "assigned_at": a.assigned_at.isoformat(), "source": a.get_source_display(),
             "expires_at": a.expires_at.isoformat() if a.expires_at else None} for a in rows]


def contact_tags_count(contact: Contact) -> int:
    return TagAssignment.objects.filter(contact=contact).count()


def contact_tag_history_count(contact: Contact) -> int:
    return AssignmentHistory.objects.filter(contact_id=contact.pk).count()


def contact_tag_history_export(contact: Contact) -> list[dict]:
    names = dict(Tag.objects.values_list("pk", "name"))
    rows = AssignmentHistory.objects.filter(contact_id=contact.pk).order_by("at", "id")
    return [{"at": h.at.isoformat(), "action": h.get_action_display(),
             "tag": names.get(h.tag_id, str(h.tag_id)), "reason": h.get_reason_display(),
             "replaced": h.replaced} for h in rows]


def operation_tags(operation) -> QuerySet[Tag]:
    """The tags one operation (an import, a bulk run) added, removed or replaced: the tags
    its undo would change (index on ``operation``)."""
    changed = AssignmentHistory.objects.filter(operation=operation).values("tag_id")
    return Tag.objects.filter(pk__in=changed).select_related("dimension")
