"""A contact's timeline: what happened to them, newest first, from every app that knows.

Each app registers a source from its ``AppConfig.ready()`` (or its admin module)::

    timeline_sources.register("tags", tag_changes)   # tag_changes(contact, before, limit)

A source returns at most ``limit`` entries older than ``before`` (all when None),
newest first. ``timeline_page`` merges them, so every source stays one indexed query
per page, whatever the contact's history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.utils.translation import gettext as _

from crm.models import Contact, Event, EventKind


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str          # "event", "message", "tag" … (a CSS class and a filter)
    title: str         # one line for people: “Purchase: Lipstick, 39.00 EUR”
    detail: str = ""   # where it came from: “import #12”, “rule: High-value customer”
    extra: dict = field(default_factory=dict)


Source = Callable[[Contact, datetime | None, int], list[Entry]]


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
    next_before: datetime | None  # pass as ``before`` for the next (older) page


def timeline_page(contact: Contact, *, before: datetime | None = None,
                  limit: int = 25) -> TimelinePage:
    """The ``limit`` newest entries older than ``before``, merged from every source."""
    entries = [e for source in timeline_sources for e in source(contact, before, limit + 1)]
    entries.sort(key=lambda e: e.at, reverse=True)
    page = entries[:limit]
    more = len(entries) > limit
    return TimelinePage(page, page[-1].at if more and page else None)


def _event_title(event: Event) -> str:
    label = str(EventKind(event.kind).label) if event.kind in EventKind.values else event.kind
    if event.kind == EventKind.CUSTOM and event.name:
        label = event.name
    parts = [event.product or event.name if event.kind != EventKind.CUSTOM else "",
             f"{event.amount} {event.currency}".strip() if event.amount is not None else ""]
    text = ", ".join(p for p in parts if p)
    return f"{label}: {text}" if text else str(label)


def events_source(contact: Contact, before: datetime | None, limit: int) -> list[Entry]:
    """Built in: the contact's events (purchases, carts, interactions, message statuses)."""
    rows = Event.objects.filter(contact=contact)
    if before is not None:
        rows = rows.filter(Q(occurred_at__lt=before))
    return [Entry(e.occurred_at, "event", _event_title(e),
                  _("source: %(source)s") % {"source": e.source})
            for e in rows.order_by("-occurred_at", "-id")[:limit]]


timeline_sources.register("events", events_source)
