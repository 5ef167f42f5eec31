"""Recording events and keeping the contacts' activity facts in step.

``events_record`` is the one way events enter Tagwerk (API, CSV import,
campaign webhooks, Python callers). It is set-based: one bulk insert of the
events and one UPDATE of the facts per batch (``crm.services``, which writes the
contacts), whatever the batch size, and idempotent: an event whose (source,
source_id) is already stored is skipped and counted as a duplicate, so
replaying a batch changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from crm.models import Event as EventModel
from crm.models import EventKind
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.selectors import contact_ids_by_phone
from crm.services import contacts_apply_events, contacts_ensure

# Sent once per events_record() call with ``events`` (the stored Event rows).
events_recorded = Signal()

KINDS = frozenset(EventKind.values)  # EventKind.values builds a new list on every access


@dataclass
class EventIn:
    """One event as it arrives; give ``contact_id`` or ``phone``."""

    kind: str
    occurred_at: datetime | None = None
    phone: str = ""
    contact_id: int | None = None
    name: str = ""
    amount: Decimal | None = None
    currency: str = ""
    product: str = ""
    category: str = ""
    payload: dict = field(default_factory=dict)
    source_id: str = ""
    # True when ``phone`` is already E.164 from normalize_phone (the API and the CSV
    # import validate first): parsing a number twice was a third of an API batch's time.
    phone_normalized: bool = False


@dataclass
class EventsResult:
    stored: list[EventModel]
    duplicates: int
    failed: dict[int, str]  # index in the input -> reason
    contacts_created: int

    @property
    def counts(self) -> dict[str, int]:
        return {"stored": len(self.stored), "duplicates": self.duplicates,
                "failed": len(self.failed), "contacts_created": self.contacts_created}


def events_record(*, events: Sequence[EventIn], source: str = "service",
                  create_contacts: bool = True, region: str | None = None) -> EventsResult:
    """Store ``events`` and update the facts of their contacts; skip ones already stored."""
    failed: dict[int, str] = {}
    phones: dict[int, str] = {}
    for index, event in enumerate(events):
        if event.kind not in KINDS:
            failed[index] = f"unknown kind “{event.kind}”"
        elif event.contact_id is None:
            try:
                phones[index] = event.phone if event.phone_normalized else normalize_phone(
                    event.phone, region)
            except InvalidPhoneNumber as exc:
                failed[index] = f"invalid_phone: {exc}"
    batch = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        numbers = set(phones.values())
        ids, created = (contacts_ensure(phones=numbers) if create_contacts
                        else (contact_ids_by_phone(numbers), 0))
        seen = set(
            EventModel.objects.filter(
                source=source,
                source_id__in=[e.source_id for e in events if e.source_id],
            ).values_list("source_id", flat=True)
        )
        rows, duplicates = [], 0
        for index, event in enumerate(events):
            if index in failed:
                continue
            contact_id = event.contact_id if event.contact_id is not None else ids.get(
                phones[index])
            if contact_id is None:
                failed[index] = "unknown_contact"
                continue
            if event.source_id:
                if event.source_id in seen:
                    duplicates += 1
                    continue
                seen.add(event.source_id)
            rows.append(EventModel(
                contact_id=contact_id, kind=event.kind, name=event.name[:100],
                occurred_at=event.occurred_at or now, received_at=now, amount=event.amount,
                currency=event.currency.upper()[:3], product=event.product[:200],
                category=event.category[:200], payload=event.payload or {}, source=source,
                source_id=event.source_id[:200], batch=batch,
            ))
        EventModel.objects.bulk_create(rows, batch_size=1000)
        if rows:
            contacts_apply_events(batch=batch)
    # PostgreSQL and SQLite >= 3.35 hand the new ids back from the bulk insert.
    stored = rows if all(row.pk for row in rows) else list(EventModel.objects.filter(batch=batch))
    if stored:
        transaction.on_commit(lambda: events_recorded.send(sender=EventModel, events=stored))
    return EventsResult(stored, duplicates, failed, created)


# --- Privacy: erasure and retention (crm.privacy) -------------------------------------------

def events_erase(*, contact_id: int) -> int:
    """Delete an erased contact's events, except purchases, which lose their payload and
    order id but keep amount, product and time: campaign revenue and conversions count
    them (docs/privacy.md)."""
    events = EventModel.objects.filter(contact_id=contact_id)
    kept = events.filter(kind=EventKind.PURCHASE).update(payload={}, source_id="")
    return kept + events.exclude(kind=EventKind.PURCHASE).delete()[0]


def events_prune(before: datetime, limit: int) -> int:
    """Delete up to ``limit`` events that happened before ``before`` (retention)."""
    ids = list(EventModel.objects.filter(occurred_at__lt=before).order_by()
               .values_list("pk", flat=True)[:limit])
    return EventModel.objects.filter(pk__in=ids).delete()[0] if ids else 0
