"""Reads on contacts."""

from __future__ import annotations

from collections.abc import Collection

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL

from crm.models import ConsentStatus, Contact, Event
from crm.phones import try_normalize_phone


def contacts_search(term: str, queryset: QuerySet[Contact] | None = None) -> QuerySet[Contact]:
    """Contacts whose number is ``term`` (any common writing) or whose name starts with it.

    A number is normalised to E.164 and looked up exactly through the unique
    index: no scan of the whole table.
    """
    queryset = Contact.objects.all() if queryset is None else queryset
    term = (term or "").strip()
    if not term:
        return queryset
    phone = try_normalize_phone(term)
    if phone:
        return queryset.filter(phone=phone)
    words = term.split()
    q = Q()
    for word in words:
        q &= Q(first_name__istartswith=word) | Q(last_name__istartswith=word)
    return queryset.filter(q)


def phone_in(phones: Collection[str]) -> Q | RawSQL:
    """A filter for contacts whose number is one of ``phones`` (E.164).

    On PostgreSQL one array literal (``= ANY``): ten thousand ``IN`` placeholders cost
    more to bind and plan than the lookup itself. E.164 numbers are ``+`` and digits,
    so the literal needs no quoting.
    """
    if connection.vendor != "postgresql":
        return Q(phone__in=phones)
    return RawSQL(f"{connection.ops.quote_name(Contact._meta.db_table)}.phone = ANY(%s::text[])",
                  ["{" + ",".join(phones) + "}"], output_field=BooleanField())


def _phone_chunks(phones: Collection[str]) -> list[list[str]]:
    phones = list(phones)
    # SQLite binds at most 32,766 parameters per statement; PostgreSQL takes one array.
    step = max(len(phones), 1) if connection.vendor == "postgresql" else 10_000
    return [phones[start:start + step] for start in range(0, len(phones), step)]


def contact_ids_by_phone(phones: Collection[str]) -> dict[str, int]:
    """phone → id of the stored contacts among ``phones`` (E.164)."""
    ids: dict[str, int] = {}
    for chunk in _phone_chunks(phones):
        ids.update(Contact.objects.filter(phone_in(chunk)).values_list("phone", "id"))
    return ids


def contacts_by_phone(phones: Collection[str]) -> dict[str, Contact]:
    """phone → the stored contact among ``phones`` (E.164): one query for a batch."""
    found: dict[str, Contact] = {}
    for chunk in _phone_chunks(phones):
        found.update((c.phone, c) for c in Contact.objects.filter(phone_in(chunk)))
    return found


def reachable_q(*, marketing: bool) -> Q:
    """Contacts who may get a WhatsApp message: not blocklisted, not opted out; for
    marketing, opted in too (PRODUCT.md §2: only numbers that agreed may get marketing)."""
    q = Q(is_blocked=False) & ~Q(consent_status=ConsentStatus.OPTED_OUT)
    return q & Q(consent_status=ConsentStatus.OPTED_IN) if marketing else q


# --- Privacy: what crm holds about one contact (crm.privacy) ------------------------------

PROFILE_FIELDS = (
    "phone", "salutation", "first_name", "last_name", "external_label", "gender", "birth_date",
    "language", "country", "city", "occupation", "notes", "attributes", "consent_status",
    "consent_source", "consent_at", "is_blocked", "purchase_count", "total_spent",
    "first_purchase_at", "last_purchase_at", "last_interaction_at", "last_read_at",
    "last_reply_at", "joined_at", "created_at", "updated_at")


def contact_profile_export(contact: Contact) -> dict:
    return {name: _jsonable(getattr(contact, name)) for name in PROFILE_FIELDS}


def contact_events_export(contact: Contact) -> list[dict]:
    rows = Event.objects.filter(contact=contact).order_by("occurred_at", "id").values(
        "kind", "name", "occurred_at", "received_at", "amount", "currency", "product",
        "category", "payload", "source", "source_id")
    return [{key: _jsonable(value) for key, value in row.items()} for row in rows]


def contact_events_count(contact: Contact) -> int:
    return Event.objects.filter(contact=contact).count()


def _jsonable(value):
    """Dates, times and decimals as ISO text and strings; the rest as it is."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, (str, int, float, bool, dict, list)):
        return str(value)
    return value
