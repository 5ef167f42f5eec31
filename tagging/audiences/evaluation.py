"""Expressions answered from the in-memory index (``index``): bitmaps and columns, no SQL.

Only for trees the index holds (``held``): tags, and the contact fields kept
as columns. The meaning is SQL's (``sql``), which the tests hold it to.
"""

from __future__ import annotations

import operator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.utils import timezone
from pyroaring import BitMap

from tagging.audiences.index import NUMERIC, TEXT, TagBitmaps, null_of, to_bitmap
from tagging.audiences.language import (
    AGE,
    DATE,
    FIELDS,
    BoolOp,
    Condition,
    Node,
    Not,
    TagRef,
    Within,
)
from tagging.audiences.sql import years_ago
from tagging.models import Tag


def tag_ids(node: TagRef, dims: dict[int, list[int]]) -> list[int]:
    if node.dimension_id is None:
        return list(node.tag_ids)
    if node.dimension_id not in dims:
        dims[node.dimension_id] = list(
            Tag.objects.filter(dimension_id=node.dimension_id).values_list("pk", flat=True)
        )
    return dims[node.dimension_id]


def held(node: Node) -> bool:
    """The index can answer this node (tags, and fields it holds as columns)."""
    if isinstance(node, BoolOp):
        return all(held(i) for i in node.items)
    if isinstance(node, Not):
        return held(node.item)
    if isinstance(node, TagRef):
        return True
    spec = FIELDS[node.field]
    if isinstance(node, Within):
        return spec.column.endswith("_at") and spec.column in NUMERIC
    if spec.q is not None or spec.column not in (*NUMERIC, *TEXT):
        return False
    if spec.kind == DATE:  # a date on a time column, or a date on a date column
        return isinstance(node.value, date) and (
            spec.column.endswith("_at") or not isinstance(node.value, datetime))
    return True


def names_tags(node: Node) -> bool:
    if isinstance(node, BoolOp):
        return any(names_tags(i) for i in node.items)
    if isinstance(node, Not):
        return names_tags(node.item)
    return isinstance(node, TagRef)


def mask(node: Node, index: TagBitmaps, now: datetime) -> np.ndarray:
    """A field-only held expression as a mask over contact ids (existing contacts only)."""
    if isinstance(node, Not):
        return index.exists & ~mask(node.item, index, now)
    if isinstance(node, BoolOp):
        masks = [mask(i, index, now) for i in node.items]
        return np.logical_and.reduce(masks) if node.op == "and" else np.logical_or.reduce(masks)
    return _field_mask(node, index, now)


def columns(node: Node) -> set[str]:
    if isinstance(node, BoolOp):
        return set().union(*(columns(i) for i in node.items))
    if isinstance(node, Not):
        return columns(node.item)
    return set() if isinstance(node, TagRef) else {FIELDS[node.field].column}


def bitmap(node: Node, index: TagBitmaps, dims: dict[int, list[int]],
            now: datetime) -> BitMap:
    """The contacts a held expression (``_held``) selects, from the index alone."""
    if isinstance(node, TagRef):
        return index.any_of(tag_ids(node, dims))
    if isinstance(node, Not):
        return index.contacts - bitmap(node.item, index, dims, now)
    if isinstance(node, BoolOp):
        if node.op == "and":
            return _and(node.items, index, dims, now)
        return BitMap.union(*(bitmap(i, index, dims, now) for i in node.items))
    return _field_bitmap(node, index, now)


def _and(items: list[Node], index: TagBitmaps, dims: dict[int, list[int]],
         now: datetime) -> BitMap:
    """An AND, built from its smallest parts: ``NOT`` of tags is subtracted (no complement
    of millions of ids), and when the tag parts leave few contacts the field-only parts
    are read at those contacts in their columns (a field's bitmap over every contact
    costs more than the test itself)."""
    minus = [i.item for i in items if isinstance(i, Not) and names_tags(i.item)]
    items = [i for i in items if not (isinstance(i, Not) and names_tags(i.item))]
    fields = [i for i in items if not names_tags(i)]
    tags = [bitmap(i, index, dims, now) for i in items if names_tags(i)]
    found = BitMap.intersection(*tags) if tags else index.contacts
    if fields and len(found) * 4 > len(index.exists):
        found = BitMap.intersection(found, *(bitmap(i, index, dims, now) for i in fields))
    elif fields:
        keep = np.logical_and.reduce([mask(i, index, now) for i in fields])
        ids = np.frombuffer(found.to_array(), dtype=np.uint32)
        ids = ids[ids < len(keep)]  # ids past the columns have no fields: they never match
        found = BitMap(ids[keep[ids]])
    for item in minus:
        found = found - bitmap(item, index, dims, now)
    return found


def contains(node: Node, index: TagBitmaps, dims: dict[int, list[int]], now: datetime,
             contact_id: int) -> bool:
    """Whether one contact matches a held expression: membership tests, no bitmap built
    for tags (a field condition still builds its bitmap)."""
    if isinstance(node, TagRef):
        return any(contact_id in index.tag(t) for t in tag_ids(node, dims))
    if isinstance(node, Not):
        return contact_id in index.contacts and not contains(node.item, index, dims, now,
                                                             contact_id)
    if isinstance(node, BoolOp):
        test = all if node.op == "and" else any
        return test(contains(i, index, dims, now, contact_id) for i in node.items)
    return contact_id in _field_bitmap(node, index, now)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _days(day: date) -> int:
    return (day - _EPOCH.date()).days


def _field_bitmap(node: Condition | Within, index: TagBitmaps, now: datetime) -> BitMap:
    return to_bitmap(_field_mask(node, index, now))


_COMPARE = {"=": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt,
            "<=": operator.le}


def _field_mask(node: Condition | Within, index: TagBitmaps, now: datetime) -> np.ndarray:
    """One field test on the index's columns, with SQL's meaning (NULL never matches a
    comparison; ``!=`` — like ``NOT`` — does match it)."""
    spec = FIELDS[node.field]
    if isinstance(node, Within):
        return index.numeric[spec.column] >= _micros(now - node.delta)
    if spec.column in TEXT:
        equal = index.text[spec.column].equal(node.value)
        return equal if node.op == "=" else index.exists & ~equal
    column = index.numeric[spec.column]
    if spec.kind == AGE:
        known = column != null_of(column)
        today, years = now.date(), int(node.value)

        def at_least(n: int):
            return known & (column <= _days(years_ago(today, n)))

        def at_most(n: int):
            return column > _days(years_ago(today, n + 1))

        return {">=": lambda: at_least(years), ">": lambda: at_least(years + 1),
                "<=": lambda: at_most(years), "<": lambda: at_most(years - 1),
                "=": lambda: at_least(years) & at_most(years),
                "!=": lambda: known & ~(at_least(years) & at_most(years))}[node.op]()
    value = node.value
    if node.field == "blocked":
        value = int(value == "true")
    elif spec.kind == DATE:
        if spec.column.endswith("_at"):
            if not isinstance(value, datetime):
                value = datetime.combine(value, datetime.min.time())
            value = _micros(value)
        else:
            value = _days(value)
    elif isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if node.op == "!=":
        return index.exists & (column != value)
    mask = _COMPARE[node.op](column, value)  # only the one comparison asked for
    # A missing value is the type's minimum: never "less than" anything in SQL.
    return mask & (column != null_of(column)) if node.op in ("<", "<=") else mask
