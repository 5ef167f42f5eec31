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
        combined = Q()
        for item in node.items:
            q = _compile(item, now)
            combined = (combined & q) if node.op == "and" else (combined | q)
        return combined
    if isinstance(node, Not):
        return ~_compile(node.item, now)
    if isinstance(node, TagRef):
        held = TagAssignment.objects.filter(contact_id=OuterRef("pk"))
        if node.dimension_id is not None:
            held = held.filter(tag__dimension_id=node.dimension_id)
        else:
            held = held.filter(tag_id__in=node.tag_ids)
        return Q(Exists(held))
    if isinstance(node, Within):
        return Q(**{f"{FIELDS[node.field].column}__gte": now - node.delta})
    return _condition_q(node, now)



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
    elif (spec.kind == DATE and spec.column.endswith("_at") and isinstance(value, date)
          and not isinstance(value, datetime)):
        value = timezone.make_aware(datetime.combine(value, datetime.min.time()))
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
