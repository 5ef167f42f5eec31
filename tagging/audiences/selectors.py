"""Which contacts an expression selects: the in-memory index where it can answer, else SQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
from django.db.models import Count, QuerySet
from django.utils import timezone
from pyroaring import BitMap

from crm.models import Contact
from tagging.audiences import evaluation, index
from tagging.audiences.language import BoolOp, Node, SegmentError, parse, parse_all
from tagging.audiences.models import BulkOperation
from tagging.audiences.sql import id_in, to_q
from tagging.models import Tag


def contacts_matching(expression: str, queryset: QuerySet[Contact] | None = None,
                      now: datetime | None = None) -> QuerySet[Contact]:
    """Contacts matching ``expression`` (one SQL query); raise ``SegmentError`` when invalid."""
    queryset = Contact.objects.all() if queryset is None else queryset
    return queryset.filter(to_q(parse(expression), now))


def count_matching(expression: str, now: datetime | None = None, *,
                   fast: bool = True) -> int:
    """Number of contacts matching ``expression``.

    Answered from the process's index (``index``: tag bitmaps and
    contact columns) where it can; a field it does not hold (``total_spent``,
    computed facts) stays in SQL, joined to the rest through the smaller of a
    set and its complement. ``fast=False`` is plain SQL.
    """
    node = parse(expression)
    now = now or timezone.now()
    if fast and index.usable():
        counted = _count_fast(node, now)
        if counted is not None:
            return counted
    return Contact.objects.filter(to_q(node, now)).count()


def counts_matching(expressions: Iterable[str], now: datetime | None = None
                    ) -> dict[str, int | None]:
    """Number of contacts matching each of ``expressions`` (None: it does not parse), for
    a list page: one vocabulary load, the index where it answers, one aggregate query
    (a filtered ``COUNT`` per expression) for the rest."""
    now = now or timezone.now()
    parsed = parse_all(expressions)
    counts: dict[str, int | None] = {text: None for text, node in parsed.items()
                                     if isinstance(node, SegmentError)}
    rest = {text: node for text, node in parsed.items() if text not in counts}
    if rest and index.usable():
        for text, node in list(rest.items()):
            if (counted := _count_fast(node, now)) is not None:
                counts[text] = counted
                del rest[text]
    if rest:
        names = {f"n{i}": text for i, text in enumerate(rest)}
        row = Contact.objects.aggregate(**{name: Count("pk", filter=to_q(rest[text], now))
                                           for name, text in names.items()})
        counts.update((text, row[name]) for name, text in names.items())
    return counts


def ids_matching(expression: str, now: datetime | None = None) -> list[int]:
    """Ids of the contacts matching ``expression``, ascending (from the index when it can)."""
    found = bitmap_matching(expression, now)
    if found is not None:
        return list(found)
    return list(Contact.objects.filter(to_q(parse(expression), now)).order_by("pk")
                .values_list("pk", flat=True))


def contact_matches(expression: str, contact_id: int, now: datetime | None = None) -> bool:
    """Whether one contact matches ``expression``: a bitmap lookup where this process holds
    the index already and it holds every name and field of it, else one ``EXISTS`` query.
    ``SegmentError`` when invalid.

    Never builds the index: one contact is not worth seconds and ~100 MB in a worker
    that checks journeys or offers and never counts."""
    node = parse(expression)
    now = now or timezone.now()
    if index.built() and index.usable() and evaluation.held(node):
        with index.reading(evaluation.columns(node)) as loaded:
            return evaluation.contains(node, loaded, {}, now, contact_id)
    return Contact.objects.filter(to_q(node, now), pk=contact_id).exists()


def bitmap_matching(expression: str, now: datetime | None = None) -> BitMap | None:
    """The matches as a new bitmap when the index can answer alone, else ``None``."""
    node = parse(expression)
    if not (index.usable() and evaluation.held(node)):
        return None
    with index.reading(evaluation.columns(node)) as loaded:
        return BitMap(evaluation.bitmap(node, loaded, {}, now or timezone.now()))


def _count_fast(node: Node, now: datetime) -> int | None:
    dims: dict[int, list[int]] = {}
    if evaluation.held(node):
        with index.reading(evaluation.columns(node)) as loaded:
            # Fields only: a vectorised mask, no bitmaps.
            if evaluation.columns(node) and not evaluation.names_tags(node):
                return int(np.count_nonzero(evaluation.mask(node, loaded, now)))
            return len(evaluation.bitmap(node, loaded, dims, now))
    if not isinstance(node, BoolOp):
        return None
    held = [i for i in node.items if evaluation.held(i)]
    rest = [i for i in node.items if not evaluation.held(i)]
    if not held:
        return None
    with index.reading(evaluation.columns(BoolOp(node.op, tuple(held)))) as loaded:
        part = evaluation.bitmap(BoolOp(node.op, tuple(held)), loaded, dims, now)
        others = loaded.contacts - part
    sql = Contact.objects.filter(to_q(BoolOp(node.op, tuple(rest)), now))
    if node.op == "and":  # S ∧ P
        if len(part) <= len(others):
            return sql.filter(id_in(part)).count()
        return sql.count() - sql.filter(id_in(others)).count()
    # S ∨ P = P + (S ∧ ¬P)
    if len(others) <= len(part):
        return len(part) + sql.filter(id_in(others)).count()
    return len(part) + sql.count() - sql.filter(id_in(part)).count()


def bulk_operation_tags(bulk: BulkOperation) -> QuerySet[Tag]:
    """The tags ``bulk`` adds or removes (a single-choice tag it replaced shares a dimension)."""
    return Tag.objects.select_related("dimension").filter(
        pk__in=[*bulk.add_tag_ids, *bulk.remove_tag_ids])
