"""Expressions compiled to SQL: one Django ``Q`` of ``EXISTS`` subqueries on ``Contact``.

The reference meaning of the language: the in-memory index (``evaluation``)
is tested against it, and lists, rules and campaigns filter with it.
"""

from __future__ import annotations

from datetime import date, datetime

from django.db.models import BooleanField, Exists, Expression, OuterRef, Q
from django.utils import timezone
from pyroaring import BitMap

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
from tagging.models import TagAssignment

# Comparison operators as Django lookups (``!=`` is a negated ``exact``).
OPS = {"=": "exact", "!=": "exact", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def to_q(node: Node, now: datetime | None = None) -> Q:
    """Compile a syntax tree to a ``Q`` on ``Contact``: one ``EXISTS`` per tag.

    This is the reference the bitmap counts (``count_matching``) are tested
    against, and what lists, rules and campaigns filter with.
    """
    return _compile(node, now or timezone.now())


def _compile(node: Node, now: datetime) -> Q:
    if isinstance(node, BoolOp):
        return _bool_q(node, now)
    if isinstance(node, Not):
        return ~_compile(node.item, now)
    if isinstance(node, TagRef):
        return _held_q([node])
    if isinstance(node, Within):
        return Q(**{f"{FIELDS[node.field].column}__gte": now - node.delta})
    return _condition_q(node, now)

def _bool_q(node: BoolOp, now: datetime) -> Q:
    """One flat ``Q`` for an n-ary AND/OR. The tags of an OR share one ``EXISTS`` (a OR b is
    "holds one of a, b"), and so do the negated tags of an AND (NOT a AND NOT b is NOT (a OR
    b)): a chain of 1,000 tags is one subquery, not 1,000."""
    merge = [i for i in node.items if _mergeable(i, node.op)]
    rest = [_compile(i, now) for i in node.items if not _mergeable(i, node.op)]
    if len(merge) == 1:
        rest.append(_compile(merge[0], now))
    elif merge:
        refs = [i if node.op == "or" else i.item for i in merge]
        rest.append(_held_q(refs) if node.op == "or" else ~_held_q(refs))
    connector = Q.AND if node.op == "and" else Q.OR
    return Q(*rest, _connector=connector)  # built at once: combining one by one is O(n²)


def _mergeable(node: Node, op: str) -> bool:
    return isinstance(node, TagRef) if op == "or" else (
        isinstance(node, Not) and isinstance(node.item, TagRef))


def _held_q(refs: list[TagRef]) -> Q:
    """``EXISTS`` an assignment of one of the tags (or dimensions) of ``refs``."""
    tag_ids = sorted({pk for ref in refs if ref.dimension_id is None for pk in ref.tag_ids})
    dimension_ids = sorted({ref.dimension_id for ref in refs if ref.dimension_id is not None})
    which = Q()
    if tag_ids:
        which |= Q(tag_id__in=tag_ids)
    if dimension_ids:
        which |= Q(tag__dimension_id__in=dimension_ids)
    held = TagAssignment.objects.filter(which, contact_id=OuterRef("pk"))
    return Q(Exists(held))


def _condition_q(node: Condition, now: datetime) -> Q:
    spec = FIELDS[node.field]
    if spec.q is not None:
        return spec.q(node.op, node.value, now)
    if spec.kind == AGE:
        q = _age_q(node.op, int(node.value), now.date())
        return q
    value = node.value
    if node.field == "blocked":
        value = value == "true"
    elif spec.kind == DATE and spec.column.endswith("_at") and isinstance(value, date):
        if not isinstance(value, datetime):
            value = datetime.combine(value, datetime.min.time())
        if timezone.is_naive(value):  # as the index reads it (``evaluation._micros``)
            value = timezone.make_aware(value)
    q = Q(**{f"{spec.column}__{OPS[node.op]}": value})
    return ~q if node.op == "!=" else q


def years_ago(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _age_q(op: str, years: int, today: date) -> Q:
    def at_least(n: int) -> Q:
        return Q(birth_date__lte=years_ago(today, n))

    def at_most(n: int) -> Q:
        return Q(birth_date__gt=years_ago(today, n + 1))

    known = Q(birth_date__isnull=False)
    return {
        ">=": at_least(years),
        ">": at_least(years + 1),
        "<=": at_most(years),
        "<": at_most(years - 1),
        "=": at_least(years) & at_most(years),
        "!=": known & ~(at_least(years) & at_most(years)),
    }[op]


def id_in(ids: BitMap) -> Q:
    return Q(IdsIn(ids))


class IdsIn(Expression):
    """``id = ANY('{…}')`` with the ids as one literal: the planner sees how many there are
    and probes a hash of them (a bound array parameter is guessed at ten rows and joined
    by a nested loop over the primary key)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, ids: BitMap, alias: str | None = None):
        super().__init__(output_field=BooleanField())
        self.ids, self.alias = ids, alias

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False,
                           for_save=False):
        clone = self.copy()
        clone.alias = query.get_initial_alias()
        return clone

    def relabeled_clone(self, change_map):
        clone = self.copy()
        clone.alias = change_map.get(self.alias, self.alias)
        return clone

    def get_group_by_cols(self):
        return []

    def as_sql(self, compiler, connection):
        literal = "{" + ",".join(map(str, self.ids)) + "}"
        return f"{compiler.quote_name_unless_alias(self.alias)}.id = ANY(%s::bigint[])", [literal]
