"""Recording events and keeping the contacts' activity facts in step.

``events_record`` is the one way events enter Tagwerk (API, CSV import,
campaign webhooks, Python callers). It is set-based: one bulk insert and one
UPDATE of the facts per batch, whatever the batch size, and idempotent: an
event whose (source, source_id) is already stored is skipped and counted as a
duplicate, so replaying a batch changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.dispatch import Signal
from django.utils import timezone

from crm.models import Contact, EventKind
from crm.models import Event as EventModel
from crm.phones import InvalidPhoneNumber, country_of, normalize_phone

# Sent once per events_record() call with ``events`` (the stored Event rows).
events_recorded = Signal()

KINDS = frozenset(EventKind.values)  # EventKind.values builds a new list on every access

# Kinds that mean the contact did something (PRODUCT.md: "last interaction").
INBOUND = [EventKind.INTERACTION, EventKind.PURCHASE, EventKind.CART_ABANDONED,
           EventKind.MESSAGE_REPLIED, EventKind.CUSTOM]


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
        ids, created = _contact_ids(set(phones.values()), create_contacts)
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
            _update_facts(batch)
    # PostgreSQL and SQLite >= 3.35 hand the new ids back from the bulk insert.
    stored = rows if all(row.pk for row in rows) else list(EventModel.objects.filter(batch=batch))
    if stored:
        transaction.on_commit(lambda: events_recorded.send(sender=EventModel, events=stored))
    return EventsResult(stored, duplicates, failed, created)


def _contact_ids(phones: set[str], create: bool) -> tuple[dict[str, int], int]:
    if not phones:
        return {}, 0
    known = dict(Contact.objects.filter(phone__in=phones).values_list("phone", "id"))
    missing = phones - known.keys()
    if not (create and missing):
        return known, 0
    Contact.objects.bulk_create(
        [Contact(phone=p, country=country_of(p)) for p in missing], ignore_conflicts=True
    )
    known.update(Contact.objects.filter(phone__in=missing).values_list("phone", "id"))
    return known, len(missing)


def _update_facts(batch: uuid.UUID) -> int:
    """Fold one batch of new events into its contacts' facts in a single UPDATE.

    ``UPDATE … FROM`` one aggregate of the batch (one pass over its events,
    grouped by contact) rather than a correlated subquery per fact and
    contact: the latter is at the planner's mercy and took seconds for 1,000
    contacts on a 1M-contact base. Works on PostgreSQL and SQLite ≥ 3.33.
    """
    qn = connection.ops.quote_name
    contact, event = qn(Contact._meta.db_table), qn(EventModel._meta.db_table)
    inbound = ", ".join(f"'{kind}'" for kind in INBOUND)

    def at(condition: str, function: str) -> str:
        return f"{function}(CASE WHEN {condition} THEN occurred_at END)"

    def pick(column: str, better: str) -> str:  # NULL-safe GREATEST/LEAST, both backends
        return (f"CASE WHEN agg.{column} IS NULL THEN {contact}.{column} "
                f"WHEN {contact}.{column} IS NULL OR agg.{column} {better} {contact}.{column} "
                f"THEN agg.{column} ELSE {contact}.{column} END")

    def later(column: str) -> str:
        return pick(column, ">")

    purchase = f"kind = '{EventKind.PURCHASE}'"
    first = pick("first_purchase_at", "<")
    sql = f"""
        UPDATE {contact} SET
            purchase_count = {contact}.purchase_count + agg.purchases,
            total_spent = {contact}.total_spent + agg.spent,
            first_purchase_at = {first},
            last_purchase_at = {later("last_purchase_at")},
            last_interaction_at = {later("last_interaction_at")},
            last_read_at = {later("last_read_at")},
            last_reply_at = {later("last_reply_at")}
        FROM (
            SELECT contact_id,
                   SUM(CASE WHEN {purchase} THEN 1 ELSE 0 END) AS purchases,
                   SUM(CASE WHEN {purchase} THEN COALESCE(amount, 0) ELSE 0 END) AS spent,
                   {at(purchase, "MIN")} AS first_purchase_at,
                   {at(purchase, "MAX")} AS last_purchase_at,
                   {at(f"kind IN ({inbound})", "MAX")} AS last_interaction_at,
                   {at(f"kind = '{EventKind.MESSAGE_READ}'", "MAX")} AS last_read_at,
                   {at(f"kind = '{EventKind.MESSAGE_REPLIED}'", "MAX")} AS last_reply_at
            FROM {event} WHERE batch = %s GROUP BY contact_id
        ) AS agg
        WHERE {contact}.id = agg.contact_id
    """
    value = EventModel._meta.get_field("batch").get_db_prep_value(batch, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        return cursor.rowcount
