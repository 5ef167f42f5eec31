"""Writes on contacts: the one module that inserts, updates and deletes ``crm_contact`` rows.

Imports, the events API, campaigns and the demo call these functions rather than
writing the table themselves (the admin's contact form saves its own object).
Bulk writes are set-based, one statement per batch, with the PostgreSQL branch
(COPY, ``unnest``) and the portable one (SQLite) as two short functions side by
side. The consent rule is written down here, once: ``consent_change_allowed``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import ConsentStatus, Contact, Event, EventKind
from crm.phones import country_of
from crm.privacy import ERASED, ERASED_PHONE_PREFIX, Subject, numbers_erased
from crm.selectors import contact_ids_by_phone

CONSENT_FIELDS = ("consent_status", "consent_source", "consent_at")

# Kinds that mean the contact did something (PRODUCT.md: "last interaction").
INBOUND = [EventKind.INTERACTION, EventKind.PURCHASE, EventKind.CART_ABANDONED,
           EventKind.MESSAGE_REPLIED, EventKind.LINK_CLICKED, EventKind.CUSTOM]

# What ``contacts_update`` writes: field names -> [(contact id, {name: value})].
Changes = Mapping[tuple[str, ...], Sequence[tuple[int, Mapping]]]


# --- consent ----------------------------------------------------------------------------


def consent_change_allowed(*, current: str, new: str, is_blocked: bool,
                           asked_by_contact: bool = False) -> bool:
    """Whether marketing consent may go from ``current`` to ``new``: the consent rule.

    * A blocklisted number is never opted in.
    * An opt-out is lifted only by the person (``asked_by_contact``: a WhatsApp
      "resume"); an import, or the undo of one, never upgrades it.
    * A status that is ``new`` already is no change.

    Every writer of consent asks this first: ``contact_set_consent`` and the contact
    import (which only ever asks to opt in, and whose undo asks to go back).
    """
    if current == new:
        return False
    if new == ConsentStatus.OPTED_IN:
        return not is_blocked and (current != ConsentStatus.OPTED_OUT or asked_by_contact)
    return True


def contact_set_consent(*, contact: Contact, status: str, source: str) -> bool:
    """Record a consent change the person asked for (WhatsApp "stop" or "resume").

    Returns False, writing nothing, when the consent rule keeps the status as it is
    (the same status, or opting in a blocklisted number).
    """
    if not consent_change_allowed(current=contact.consent_status, new=status,
                                  is_blocked=contact.is_blocked, asked_by_contact=True):
        return False
    contact.consent_status, contact.consent_source = status, source[:200]
    contact.consent_at = timezone.now()
    contact.save(update_fields=[*CONSENT_FIELDS, "updated_at"])
    return True


# --- creating contacts ----------------------------------------------------------------


def contacts_insert(*, rows: Sequence[Mapping], skip_existing: bool = False) -> dict[str, int]:
    """Create one contact per row with one INSERT; return phone → id of those created.

    ``rows`` map field names to values, the same names in every row, with ``phone`` in
    E.164 (as ``normalize_phone`` returns it) and ``country`` as ``country_of`` gives it.
    Fields not given get their model default; ``joined_at`` not given is ``created_at``.
    A number stored already raises ``IntegrityError``; with ``skip_existing`` it is left
    as it is and missing from the result, also when another transaction stores it at the
    same moment.
    """
    if not rows:
        return {}
    if "created_at" in rows[0] and "joined_at" not in rows[0]:
        rows = [{**row, "joined_at": row["created_at"]} for row in rows]
    rows = _block_erased(rows)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            return _insert_postgresql(rows, skip_existing)
        return _insert_portable(rows, skip_existing)


def _block_erased(rows: Sequence[Mapping]) -> Sequence[Mapping]:
    """Rows whose number was erased on request come back blocklisted and opted out.

    Whoever creates the contact again (the API, a shop order, the person writing in
    through an entry point), the number is never messaged again (docs/privacy.md).
    Every row keeps the same keys, as the inserts want.
    """
    erased = numbers_erased(row["phone"] for row in rows)
    if not erased:
        return rows
    blocked = {"is_blocked": True, "consent_status": ConsentStatus.OPTED_OUT,
               "consent_source": "erased on request"}
    return [{"is_blocked": False, "consent_status": ConsentStatus.UNKNOWN, "consent_source": "",
             **row, **(blocked if row["phone"] in erased else {})} for row in rows]


def contacts_ensure(*, phones: Collection[str]) -> tuple[dict[str, int], int]:
    """phone → id for every number of ``phones`` (E.164), creating the contacts that are
    missing; and how many were created. Safe to call twice, or twice at once."""
    known = contact_ids_by_phone(phones)
    missing = set(phones) - known.keys()
    if not missing:
        return known, 0
    created = contacts_insert(rows=[{"phone": p, "country": country_of(p)} for p in missing],
                              skip_existing=True)
    known.update(created)
    if len(created) < len(missing):  # another transaction stored some at the same moment
        known.update(contact_ids_by_phone(missing - created.keys()))
    return known, len(created)


def _insert_postgresql(rows: Sequence[Mapping], skip_existing: bool) -> dict[str, int]:
    """COPY the rows into a temporary table, then one INSERT … SELECT from it: no model
    instances and no parameter per value (COPY is psycopg's fastest way in)."""
    qn = connection.ops.quote_name
    fields = {f.attname: f for f in Contact._meta.concrete_fields if not f.primary_key}
    given = list(rows[0])
    temp = [f"c{i}" for i in range(len(given))]
    jsons = [i for i, n in enumerate(given) if fields[n].get_internal_type() == "JSONField"]
    types = ", ".join(f"c{i} jsonb" if i in jsons else f"c{i} {fields[n].db_type(connection)}"
                      for i, n in enumerate(given))
    others = [f for name, f in fields.items() if name not in given]
    columns = ", ".join(qn(f.column) for f in [*(fields[n] for n in given), *others])
    selects = ", ".join([*temp, *["%s"] * len(others)])
    conflict = " ON CONFLICT (phone) DO NOTHING" if skip_existing else ""
    with connection.cursor() as cursor:
        # Lives for this transaction only; dropped at once so the next batch can make it again.
        cursor.execute(f"CREATE TEMPORARY TABLE tw_contacts_new ({types}) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY tw_contacts_new ({', '.join(temp)}) FROM STDIN") as copy:
            for row in rows:
                values = [row[n] for n in given]
                for i in jsons:
                    values[i] = json.dumps(values[i])
                copy.write_row(values)
        cursor.execute(f"INSERT INTO {qn(Contact._meta.db_table)} ({columns}) SELECT {selects} "
                       f"FROM tw_contacts_new{conflict} RETURNING phone, id",
                       [_default(f) for f in others])
        ids = dict(cursor.fetchall())
        cursor.execute("DROP TABLE tw_contacts_new")
    return ids


def _default(field) -> object:
    """A field's value for a new row that does not give it, as the database stores it."""
    stamped = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    value = timezone.now() if stamped else field.get_default()
    return field.get_db_prep_save(value, connection)


def _insert_portable(rows: Sequence[Mapping], skip_existing: bool) -> dict[str, int]:
    """``bulk_create``; SQLite serialises writers, so numbers stored before are read first."""
    if skip_existing:
        stored = contact_ids_by_phone([row["phone"] for row in rows])
        rows = [row for row in rows if row["phone"] not in stored]
    objects = [Contact(**row) for row in rows]
    Contact.objects.bulk_create(objects, ignore_conflicts=skip_existing)
    if all(o.pk for o in objects):  # SQLite >= 3.35 hands the new ids back
        return {o.phone: o.pk for o in objects}
    return contact_ids_by_phone([o.phone for o in objects])


# --- changing contacts ----------------------------------------------------------------


def contacts_update(*, changes: Changes, now: datetime | None = None) -> None:
    """Write new values into existing contacts: one statement per set of field names.

    ``changes`` maps field names to ``(contact id, {name: value})`` pairs giving exactly
    those fields; ``updated_at`` becomes ``now``. It writes what it is given: consent
    values must have passed ``consent_change_allowed``.
    """
    now = now or timezone.now()
    for names, entries in changes.items():
        if connection.vendor == "postgresql":
            _update_postgresql(names, entries, now)
        else:
            _update_portable(names, entries, now)


# Array types for ``unnest`` of the fields an import or its undo writes.
_ARRAY_TYPES = {"CharField": "text[]", "TextField": "text[]", "DateField": "date[]",
                "DateTimeField": "timestamptz[]", "JSONField": "jsonb[]",
                "PositiveIntegerField": "integer[]", "DecimalField": "numeric[]"}


def _update_postgresql(names: tuple[str, ...], entries: Sequence[tuple[int, Mapping]],
                       now: datetime) -> None:
    """One ``UPDATE … FROM unnest(…)``: a parameter per field, not per value."""
    qn = connection.ops.quote_name
    fields = [Contact._meta.get_field(n) for n in names]
    params: list = [now, [pk for pk, _ in entries]]
    for f in fields:
        column = [values[f.attname] for _, values in entries]
        params.append([json.dumps(v) for v in column] if f.get_internal_type() == "JSONField"
                      else column)
    arrays = ", ".join(["%s::bigint[]"] + [f"%s::{_ARRAY_TYPES[f.get_internal_type()]}"
                                            for f in fields])
    values = ", ".join(f"v{i}" for i in range(len(fields)))
    sets = ", ".join(f"{qn(f.column)} = n.v{i}" for i, f in enumerate(fields))
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {qn(Contact._meta.db_table)} c SET {sets}, "
                       f"{qn('updated_at')} = %s FROM unnest({arrays}) AS n(id, {values}) "
                       "WHERE c.id = n.id", params)


def _update_portable(names: tuple[str, ...], entries: Sequence[tuple[int, Mapping]],
                     now: datetime) -> None:
    Contact.objects.bulk_update([Contact(id=pk, updated_at=now, **values)
                                 for pk, values in entries],
                                [*names, "updated_at"], batch_size=1000)


def contacts_join_earlier(*, joined: Sequence[tuple[int, datetime]]) -> None:
    """Move each contact's ``joined_at`` back to the given moment where that is earlier, in
    one statement: it is the earliest thing known about a customer and never moves later
    (an import's undo puts a value back through ``contacts_update``)."""
    if not joined:
        return
    qn = connection.ops.quote_name
    table = qn(Contact._meta.db_table)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} c SET joined_at = LEAST(c.joined_at, n.at) "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS n(id, at) "
                "WHERE c.id = n.id AND n.at < c.joined_at",
                [[pk for pk, _ in joined], [at for _, at in joined]])
        return
    field = Contact._meta.get_field("joined_at")
    with connection.cursor() as cursor:  # SQLite stores the times as comparable text
        cursor.executemany(
            f"UPDATE {table} SET joined_at = %s WHERE id = %s AND joined_at > %s",
            [(value, pk, value) for pk, at in joined
             for value in [field.get_db_prep_value(at, connection)]])


def contacts_apply_events(*, batch: uuid.UUID) -> int:
    """Fold one batch of stored events into its contacts' activity facts in one UPDATE;
    return how many contacts it changed.

    ``UPDATE … FROM`` one aggregate of the batch (one pass over its events, grouped by
    contact) rather than a correlated subquery per fact and contact: the latter is at the
    planner's mercy and took seconds for 1,000 contacts on a 1M-contact base. Facts never
    move backwards: an older event leaves a later date as it is; ``joined_at`` moves back to
    the batch's first event when that is earlier (an imported history, an inbound
    message of a contact created later). Works on PostgreSQL and SQLite ≥ 3.33.
    """
    qn = connection.ops.quote_name
    contact = qn(Contact._meta.db_table)
    inbound = ", ".join(f"'{kind}'" for kind in INBOUND)

    def at(condition: str, function: str) -> str:
        return f"{function}(CASE WHEN {condition} THEN occurred_at END)"

    def pick(column: str, better: str) -> str:  # NULL-safe GREATEST/LEAST, both backends
        return (f"CASE WHEN agg.{column} IS NULL THEN {contact}.{column} "
                f"WHEN {contact}.{column} IS NULL OR agg.{column} {better} {contact}.{column} "
                f"THEN agg.{column} ELSE {contact}.{column} END")

    purchase = f"kind = '{EventKind.PURCHASE}'"
    sql = f"""
        UPDATE {contact} SET
            purchase_count = {contact}.purchase_count + agg.purchases,
            total_spent = {contact}.total_spent + agg.spent,
            first_purchase_at = {pick("first_purchase_at", "<")},
            last_purchase_at = {pick("last_purchase_at", ">")},
            last_interaction_at = {pick("last_interaction_at", ">")},
            last_read_at = {pick("last_read_at", ">")},
            last_reply_at = {pick("last_reply_at", ">")},
            joined_at = {pick("joined_at", "<")}
        FROM (
            SELECT contact_id,
                   SUM(CASE WHEN {purchase} THEN 1 ELSE 0 END) AS purchases,
                   SUM(CASE WHEN {purchase} THEN COALESCE(amount, 0) ELSE 0 END) AS spent,
                   {at(purchase, "MIN")} AS first_purchase_at,
                   {at(purchase, "MAX")} AS last_purchase_at,
                   {at(f"kind IN ({inbound})", "MAX")} AS last_interaction_at,
                   {at(f"kind = '{EventKind.MESSAGE_READ}'", "MAX")} AS last_read_at,
                   {at(f"kind = '{EventKind.MESSAGE_REPLIED}'", "MAX")} AS last_reply_at,
                   MIN(occurred_at) AS joined_at
            FROM {qn(Event._meta.db_table)} WHERE batch = %s GROUP BY contact_id
        ) AS agg
        WHERE {contact}.id = agg.contact_id
    """
    value = Event._meta.get_field("batch").get_db_prep_value(batch, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value])
        return cursor.rowcount


# --- locking contacts before a batch of fact updates (campaign webhooks) ------------------


def contacts_lock(*, ids: Collection[int]) -> None:
    """Lock the rows of ``ids`` until the current transaction ends, in id order.

    For a transaction that goes on to update the facts of many contacts at once (a batch
    of campaign webhooks, ``campaigns.webhooks``): when every such transaction takes its
    locks in the same order, two that share contacts wait for each other instead of
    deadlocking. Writes nothing; a no-op where rows cannot be locked (SQLite locks the
    whole database for a writer anyway).
    """
    if not ids or not connection.features.has_select_for_update:
        return
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), 1000):
        list(Contact.objects.filter(pk__in=ordered[start:start + 1000]).order_by("pk")
             .select_for_update().values_list("pk", flat=True))


# --- deleting contacts ----------------------------------------------------------------


def contacts_delete(*, ids: Sequence[int]) -> int:
    """Delete the contacts ``ids`` with what cascades from them; return how many went."""
    return Contact.objects.filter(pk__in=ids).delete()[1].get(Contact._meta.label, 0)


# --- erasing a contact (crm.privacy) -----------------------------------------------------

ANONYMISED = {
    "first_name": "", "last_name": "", "salutation": "", "gender": "", "birth_date": None,
    "language": "", "city": "", "occupation": "", "external_label": "", "notes": "",
    "attributes": {}, "consent_status": ConsentStatus.OPTED_OUT,
    "consent_source": "erased on request", "is_blocked": True,
}


def contact_anonymise(*, subject: Subject) -> int:
    """Blank every personal field of the subject's contact; keep the row and its facts.

    The row stays (phone ``erased:<id>``, blocklisted) so that what reports count through
    it (campaign recipients, their purchases) stays right; nothing in it names a person.
    Django's admin log entries about the contact, or naming it, lose their text.
    """
    contact = subject.contact
    now = timezone.now()
    done = Contact.objects.filter(pk=contact.pk).update(
        phone=f"{ERASED_PHONE_PREFIX}{contact.pk}", consent_at=now, updated_at=now,
        **ANONYMISED)
    return done + _admin_log_scrub(subject)


def _admin_log_scrub(subject: Subject) -> int:
    about = Q(content_type=ContentType.objects.get_for_model(Contact),
              object_id=str(subject.contact.pk))
    naming = Q(object_repr__contains=subject.national)
    for name in subject.names:
        naming |= Q(object_repr__icontains=name) | Q(change_message__icontains=name)
    return LogEntry.objects.filter(about | naming).update(object_repr=ERASED, change_message="")
