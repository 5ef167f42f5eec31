"""Computed facts for the segment language that are not plain contact columns.

Each builder takes the comparison (``op``, ``value``) and the evaluation time
and returns a ``Q`` on ``Contact``; ``tagging.audiences.language.FIELDS`` names them
with ``FieldSpec(q=...)``. They stay set-based: a date window or one grouped
subquery, never a per-contact loop.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q
from django.utils import timezone

from crm.models import Event, EventKind

# "≥ 1 read message per week on average" (PRODUCT.md §6) is measured over the
# last four weeks: long enough to average out one busy day, short enough to
# follow a change of habit.
READ_RATE_WEEKS = 4

_ALL = Q(pk__isnull=False)
_NONE = Q(pk__isnull=True)


def _combine(op: str, at_least, more_than) -> Q:
    """Build every comparison from ``>=`` and ``>``, so that NULL never leaks into NOT."""
    return {
        ">=": lambda: at_least,
        ">": lambda: more_than,
        "<": lambda: ~at_least,
        "<=": lambda: ~more_than,
        "=": lambda: at_least & ~more_than,
        "!=": lambda: ~(at_least & ~more_than),
    }[op]()


def reads_per_week_q(op: str, value: Decimal, now: datetime) -> Q:
    """Read messages per week over the last ``READ_RATE_WEEKS`` weeks, compared with ``value``."""
    since = now - timedelta(weeks=READ_RATE_WEEKS)
    threshold = Decimal(value) * READ_RATE_WEEKS

    def reads(lookup: str, limit: Decimal) -> Q:
        if (lookup == "gte" and limit <= 0) or (lookup == "gt" and limit < 0):
            return _ALL
        counted = (
            Event.objects.filter(kind=EventKind.MESSAGE_READ, occurred_at__gte=since,
                                 occurred_at__lte=now)
            .order_by().values("contact_id").annotate(n=Count("*"))
            .filter(**{f"n__{lookup}": limit}).values("contact_id")
        )
        return Q(pk__in=counted)

    return _combine(op, reads("gte", threshold), reads("gt", threshold))


def birthday_in_q(op: str, value: Decimal, now: datetime) -> Q:
    """Days until the next birthday (0 = today), compared with ``value``.

    Compiled to the (month, day) pairs of the window, so it is portable and
    needs no date arithmetic in SQL. Contacts born on 29 February celebrate
    on 28 February in other years.
    """
    today = timezone.localtime(now).date() if timezone.is_aware(now) else now.date()
    days = int(value)

    def within(last: int) -> Q:
        """Birthday in [today, today + last days]."""
        if last < 0:
            return _NONE
        if last >= 365:
            return Q(birth_date__isnull=False)
        q = _NONE
        for offset in range(last + 1):
            day = today + timedelta(days=offset)
            q |= Q(birth_date__month=day.month, birth_date__day=day.day)
            if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
                q |= Q(birth_date__month=2, birth_date__day=29)
        return q & Q(birth_date__isnull=False)

    known = Q(birth_date__isnull=False)
    at_least_next = known & ~within(days - 1)  # >= days
    more_than = known & ~within(days)  # > days
    return known & _combine(op, at_least_next, more_than)
