"""A contact's timeline: what happened to them, newest first, from every app that knows.

Each app registers a source from its ``AppConfig.ready()`` (or its admin module)::

    timeline_sources.register("tags", tag_changes)   # tag_changes(contact, before, limit)

Entries are ordered newest first by ``(at, kind, id)``, so rows written in one instant (a
bulk change, an import) still have a place of their own. A source returns at most ``limit``
entries that come after the cursor ``before`` in that order (all when None), filtering
with ``before.q(kind, …)`` and ordering by ``-time, -id``. ``timeline_page`` merges them,
so every source stays one indexed query per page, whatever the contact's history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from crm.models import Contact, Event, EventKind


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str          # "event", "message", "tag" … (a CSS class and a filter)
    title: str         # one line for people: “Purchase: Lipstick, 39.00 EUR”
    detail: str = ""   # where it came from: “import #12”, “rule: High-value customer”
    extra: dict = field(default_factory=dict)
    id: int = 0        # the row's id in its source: orders entries of the same instant


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last entry's ``(at, kind, id)``; the next page starts after it."""

    at: datetime
    kind: str = ""
    id: int = 0

    @classmethod
    def of(cls, entry: Entry) -> Cursor:
        return cls(entry.at, entry.kind, entry.id)

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        """``encode()``'s text back; a bare datetime (older links) too; None when malformed."""
        at_text, _sep, rest = (text or "").partition("~")
        kind, _sep, id_text = rest.partition("~")
        try:
            at = parse_datetime(at_text.replace(" ", "+"))
            pk = int(id_text or 0)
        except ValueError:
            return None
        if at is None:
            return None
        if timezone.is_naive(at):
            at = timezone.make_aware(at, UTC)
        try:  # compared in UTC (SQLite converts it): a datetime with no UTC equivalent
            at = at.astimezone(UTC)
        except OverflowError:
            return None
        return cls(at, kind, pk)

    def encode(self) -> str:
        return f"{self.at.isoformat()}~{self.kind}~{self.id}"

    def q(self, kind: str, at: str, pk: str = "pk") -> Q:
        """Rows of ``kind`` after the cursor, newest first by ``(at, kind, id)``."""
        if kind < self.kind:
            return Q(**{f"{at}__lte": self.at})
        if kind > self.kind:
            return Q(**{f"{at}__lt": self.at})
        return Q(**{f"{at}__lt": self.at}) | Q(**{at: self.at, f"{pk}__lt": self.id})

    def key(self) -> tuple:
        return (self.at, self.kind, self.id)


Source = Callable[[Contact, Cursor | None, int], list[Entry]]


class TimelineSources:
    def __init__(self):
        self._sources: dict[str, Source] = {}

    def register(self, name: str, source: Source) -> None:
        """Add ``source``; the same name again replaces it."""
        self._sources[name] = source

    def __iter__(self):
        return iter(list(self._sources.values()))


timeline_sources = TimelineSources()


@dataclass
class TimelinePage:
    entries: list[Entry]
    next_before: Cursor | None  # pass as ``before`` for the next (older) page


def timeline_page(contact: Contact, *, before: Cursor | None = None,
                  limit: int = 25) -> TimelinePage:
    """The ``limit`` newest entries after the cursor ``before``, merged from every source."""
    entries = [e for source in timeline_sources for e in source(contact, before, limit + 1)]
    entries.sort(key=lambda e: Cursor.of(e).key(), reverse=True)
    page = entries[:limit]
    more = len(entries) > limit
    return TimelinePage(page, Cursor.of(page[-1]) if more and page else None)


def _event_title(event: Event) -> str:
    label = str(EventKind(event.kind).label) if event.kind in EventKind.values else event.kind
    if event.kind == EventKind.CUSTOM and event.name:
        label = event.name
    parts = [event.product or event.name if event.kind != EventKind.CUSTOM else "",
             f"{event.amount} {event.currency}".strip() if event.amount is not None else ""]
    text = ", ".join(p for p in parts if p)
    return f"{label}: {text}" if text else str(label)


def events_source(contact: Contact, before: Cursor | None, limit: int) -> list[Entry]:
    """Built in: the contact's events (purchases, carts, interactions, message statuses)."""
    rows = Event.objects.filter(contact=contact)
    if before is not None:
        rows = rows.filter(before.q("event", "occurred_at"))
    return [Entry(e.occurred_at, "event", _event_title(e),
                  _("source: %(source)s") % {"source": e.source}, id=e.pk)
            for e in rows.order_by("-occurred_at", "-id")[:limit]]


timeline_sources.register("events", events_source)
