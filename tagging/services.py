"""The tag-change service: the only writer of ``tagging_tagassignment`` and
``tagging_assignmenthistory``.

Every change of who holds which tag goes through a function here — admin, bulk
actions, imports and their undo, rules, campaigns, API, expiry, vocabulary merges
and deletions, the demo's past — so that single-choice replacement, lifetimes and
history live in one place and nobody gains or loses a tag without a history row
(a deleted contact or tag takes its assignments along: tagging migration 0002).
``tags_change`` (the same tags for many contacts) and ``tags_change_pairs`` (each
contact its own) check the actor's rights on every tag; the functions for callers
that authorise in their own way say so. All are set-based: a few SQL statements per
batch of contacts, whatever the number of contacts. The SQL is ``_Writer``'s, in a
PostgreSQL and a portable (SQLite) dialect.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import Contact
from tagging.models import AssignmentHistory, Source, Tag, TagAssignment
from tagging.permissions import ensure_can_apply
from tagging.signals import tags_changed

BATCH_SIZE = 10_000

Progress = Callable[[int, int], None]
Statement = tuple[str, list]  # SQL and its parameters
_EMPTY: Mapping = {}


class TagChangeError(ValueError):
    """The request itself is wrong (e.g. an archived tag); nothing was changed."""


@dataclass(frozen=True)
class TagChangeResult:
    operation: uuid.UUID
    contacts: int
    added: int
    removed: int
    replaced: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.replaced)


def contact_ids(contacts: QuerySet[Contact] | Iterable[Contact | int]) -> list[int]:
    """Materialise a selection once, so that changes made on the way cannot move it."""
    if isinstance(contacts, QuerySet):
        return list(contacts.order_by().values_list("pk", flat=True).distinct())
    return list(dict.fromkeys(c if isinstance(c, int) else c.pk for c in contacts))


def tags_change(
    *,
    contacts: QuerySet[Contact] | Iterable[Contact | int],
    add: Sequence[Tag] = (),
    remove: Sequence[Tag] = (),
    actor=None,
    source: str = Source.MANUAL,
    source_ref: str = "",
    expires_at: datetime | None = None,
    progress: Progress | None = None,
    operation: uuid.UUID | None = None,
) -> TagChangeResult:
    """Add ``add`` to and remove ``remove`` from ``contacts`` in one step.

    Checks the actor's rights on every tag first and changes nothing when one
    is refused. A tag of a single-choice dimension replaces the contact's
    other tags of that dimension. Repeating the call changes nothing more.
    """
    add, remove = list(dict.fromkeys(add)), list(dict.fromkeys(remove))
    tags_change_validate(add, remove)
    ensure_can_apply(actor, [*add, *remove])
    writer = _writer(operation=operation or uuid.uuid4(), actor=actor, source=source,
                     source_ref=source_ref)
    return _change(writer, contact_ids(contacts), add, remove, expires_at=expires_at,
                   progress=progress)


def assignments_move(*, from_tag: Tag, to_tag: Tag, actor=None,
                     source_ref: str = "") -> TagChangeResult:
    """Give every holder of ``from_tag`` ``to_tag`` instead (a merge), logged with reason
    “merge” and attributed to ``actor``.

    As ``tags_change`` does — no duplicates, single-choice replacement, lifetime — but
    without asking the actor's right to apply: the caller authorises (a merge needs the
    right to define both tags). Repeating the call moves nothing more.
    """
    tags_change_validate([to_tag], [from_tag])
    holders = Contact.objects.filter(
        pk__in=TagAssignment.objects.filter(tag=from_tag).values("contact_id"))
    writer = _writer(operation=uuid.uuid4(), actor=actor, source=Source.MERGE,
                     source_ref=source_ref)
    return _change(writer, contact_ids(holders), [to_tag], [from_tag])


def _change(writer: _Writer, ids: list[int], add: list[Tag], remove: list[Tag], *,
            expires_at: datetime | None = None,
            progress: Progress | None = None) -> TagChangeResult:
    """The change once it is allowed: batch by batch, one transaction each."""
    now = timezone.now()
    rivals = {tag.pk: _rivals(tag) for tag in add if tag.dimension.single_choice}
    added = removed = replaced = 0
    for start in range(0, len(ids), BATCH_SIZE):
        chunk = ids[start : start + BATCH_SIZE]
        with transaction.atomic():
            if remove:
                removed += writer.remove(chunk, [t.pk for t in remove])
            for tag in add:
                if rivals.get(tag.pk):
                    replaced += writer.remove(chunk, rivals[tag.pk], replaced=True)
                expiry = expires_at or (
                    now + timedelta(days=tag.lifetime_days) if tag.lifetime_days else None
                )
                added += writer.add(chunk, tag.pk, expires_at=expiry)
        if progress:
            progress(min(start + BATCH_SIZE, len(ids)), len(ids))
    return _announce(TagChangeResult(writer.operation, len(ids), added, removed, replaced),
                     writer)


def tags_change_pairs(
    *,
    add: Mapping[Tag, Sequence[int]] = _EMPTY,
    remove: Mapping[Tag, Sequence[int]] = _EMPTY,
    actor=None,
    source: str = Source.MANUAL,
    source_ref: str = "",
    operation: uuid.UUID | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> TagChangeResult:
    """Different tags for different contacts in one step: ``add`` and ``remove`` map a tag
    to the contact ids that gain or lose it (an import's batch: each row its own tags).

    The same rules as ``tags_change`` — rights on every tag first, archived tags refused,
    single-choice replacement, lifetimes, history — for the caller's open transaction.
    On PostgreSQL a batch is three statements whatever the number of tags, sent in one
    pipeline: ``meanwhile`` (which must not query) runs while the database works on them,
    so that an import parses its next batch then. Other databases take the tags one by
    one (and call ``meanwhile`` after).
    """
    _refuse_archived(list(add))
    _single_choice_check(add)
    ensure_can_apply(actor, [*add, *remove])
    writer = _writer(operation=operation or uuid.uuid4(), actor=actor, source=source,
                     source_ref=source_ref)
    now = timezone.now()
    expiry = {t.pk: now + timedelta(days=t.lifetime_days) if t.lifetime_days else None
              for t in add}
    with transaction.atomic():
        removed, replaced, added = writer.change_pairs(add, remove, expiry, meanwhile)
    contacts = len({i for ids in (*add.values(), *remove.values()) for i in ids})
    return _announce(TagChangeResult(writer.operation, contacts, added, removed, replaced),
                     writer)


def _announce(result: TagChangeResult, writer: _Writer) -> TagChangeResult:
    """Send ``tags_changed`` once the transaction commits, when anything changed."""
    if result.changed:
        actor, source = writer.actor, writer.source
        transaction.on_commit(
            lambda: tags_changed.send(sender=Tag, result=result, actor=actor, source=source)
        )
    return result


def _rivals(tag: Tag) -> list[int]:
    """The other tags of ``tag``'s dimension: what it replaces when that is single-choice."""
    return list(Tag.objects.filter(dimension_id=tag.dimension_id).exclude(pk=tag.pk)
                .values_list("pk", flat=True))


def tags_change_validate(add: list[Tag], remove: list[Tag]) -> None:
    """Raise ``TagChangeError`` for a request ``tags_change`` would refuse."""
    both = {t.name for t in add} & {t.name for t in remove}
    if both:
        raise TagChangeError(
            _("A tag cannot be added and removed in the same step: %(tags)s.")
            % {"tags": ", ".join(sorted(both))}
        )
    _refuse_archived(add)
    seen: dict[int, str] = {}
    for tag in add:
        if tag.dimension.single_choice:
            if tag.dimension_id in seen:
                raise TagChangeError(
                    _("“%(a)s” and “%(b)s” belong to the single-choice dimension “%(d)s”; "
                      "pick one.") % {"a": seen[tag.dimension_id], "b": tag.name,
                                     "d": tag.dimension.name}
                )
            seen[tag.dimension_id] = tag.name


def _refuse_archived(add: list[Tag]) -> None:
    archived = sorted(t.name for t in add if t.is_archived)
    if archived:
        raise TagChangeError(
            _("Archived tags cannot be applied: %(tags)s. Restore them first.")
            % {"tags": ", ".join(archived)}
        )


def _single_choice_check(add: Mapping[Tag, Sequence[int]]) -> None:
    """Refuse two tags of one single-choice dimension for the same contact."""
    seen: dict[tuple[int, int], Tag] = {}
    for tag, ids in add.items():
        if not tag.dimension.single_choice:
            continue
        for contact_id in ids:
            other = seen.setdefault((tag.dimension_id, contact_id), tag)
            if other is not tag:
                raise TagChangeError(
                    _("“%(a)s” and “%(b)s” belong to the single-choice dimension “%(d)s”; "
                      "pick one.") % {"a": other.name, "b": tag.name, "d": tag.dimension.name})


def operation_undo(*, operation: uuid.UUID, actor=None, source_ref: str = "") -> TagChangeResult:
    """Take back exactly what ``operation`` changed: remove what it added, restore what it removed.

    Idempotent: undoing an operation a second time changes nothing.
    """
    marker = f"undo:{operation}"
    # The undo's own id follows from the operation's, so "already undone?" is one probe
    # of the operation index (source_ref has none: it would be paid on every history row).
    undo_op = uuid.uuid5(operation, "undo")
    if AssignmentHistory.objects.filter(operation=undo_op).exists():
        return TagChangeResult(operation, 0, 0, 0, 0)
    writer = _writer(operation=undo_op, actor=actor, source=Source.UNDO, source_ref=marker)
    with transaction.atomic():
        removed, added = writer.undo(operation)
    contacts = (
        AssignmentHistory.objects.filter(operation=undo_op).values("contact_id").distinct().count()
    )
    return TagChangeResult(undo_op, contacts, added, removed, 0)


def expired_assignments_remove(*, now: datetime | None = None) -> int:
    """Remove every assignment whose expiry has passed, logged with reason “expiry”."""
    now = now or timezone.now()
    writer = _writer(operation=uuid.uuid4(), actor=None, source=Source.EXPIRY, source_ref="")
    with transaction.atomic():
        return writer.remove_where("expires_at <= %s", [_db(TagAssignment, "expires_at", now)])


def assignments_remove_all(*, tag: Tag, actor=None, source_ref: str = "") -> int:
    """Take ``tag`` from every contact holding it, logged with reason “system”; return how
    many lost it.

    Asks no right: for a tag about to be deleted, whose deletion the caller authorised.
    """
    writer = _writer(operation=uuid.uuid4(), actor=actor, source=Source.SYSTEM,
                     source_ref=source_ref)
    with transaction.atomic():
        return writer.remove_where("tag_id = %s", [tag.pk])


def assignment_expiry_set(*, contacts, tag: Tag, expires_at: datetime | None, actor=None) -> int:
    """Give ``tag`` on ``contacts`` an explicit expiry (``None`` clears it); returns rows changed.

    The hourly expiry task removes the assignment once ``expires_at`` has passed. Not a
    change of who holds the tag, so no history row.
    """
    ensure_can_apply(actor, [tag])
    ids = contact_ids(contacts)
    changed = 0
    for start in range(0, len(ids), BATCH_SIZE):
        changed += TagAssignment.objects.filter(
            tag=tag, contact_id__in=ids[start:start + BATCH_SIZE]).update(expires_at=expires_at)
    return changed


def assignments_orphans_remove(*, contact_ids: Sequence[int] = (),
                                tag_ids: Sequence[int] = ()) -> int:
    """Delete the assignments, among those of ``contact_ids`` and ``tag_ids``, whose contact or
    tag no longer exists; return how many.

    Assignments have no foreign keys (migration ``0002_assignment_cascades``): the rare one a
    writer added while its contact or tag was being deleted is swept here, without history
    (its contact or tag is gone). PostgreSQL only, where that race exists.
    """
    if connection.vendor != "postgresql" or not (contact_ids or tag_ids):
        return 0
    deleted = 0
    with connection.cursor() as cursor:
        for column, owner, ids in (("contact_id", "crm_contact", contact_ids),
                                   ("tag_id", "tagging_tag", tag_ids)):
            if ids:
                cursor.execute(
                    f"DELETE FROM tagging_tagassignment a WHERE a.{column} = ANY(%s::bigint[]) "
                    f"AND NOT EXISTS (SELECT 1 FROM {owner} x WHERE x.id = a.{column})",
                    [_array(ids)])
                deleted += max(cursor.rowcount, 0)
    return deleted


def assignments_backdate(*, source_ref: str, days: int, seed: int) -> int:
    """Spread the assignments written with ``source_ref`` and their history over the past
    ``days``, never before the contact existed; return how many history rows moved.

    For demo data only (``tagging.demo``): history is otherwise never rewritten. The same
    seed gives the same dates. Set-based: one UPDATE per day (rows fall into a day by a
    hash of their id), a clamp to the contact's creation, then each assignment takes the
    time of its latest history row.
    """
    now = timezone.now()
    rows = AssignmentHistory.objects.filter(source_ref=source_ref)
    moved = 0
    with transaction.atomic():
        for day in range(days):
            moved += rows.extra(
                where=["((id + %s) * 7919) %% %s = %s"], params=[seed, days, day],
            ).update(at=now - timedelta(days=day))
        created = Contact.objects.filter(pk=OuterRef("contact_id")).values("created_at")[:1]
        rows.filter(at__lt=Subquery(created)).update(at=Subquery(created))
        held_since = (AssignmentHistory.objects.filter(
            source_ref=source_ref, contact_id=OuterRef("contact_id"), tag_id=OuterRef("tag_id"))
            .order_by("-at").values("at")[:1])
        TagAssignment.objects.filter(source_ref=source_ref).update(
            assigned_at=Subquery(held_since))
    return moved


def _db(model, field: str, value):
    """A Python value as the database stores it (UUIDs and datetimes differ per backend)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def _pairs(by_tag: Mapping[Tag, Sequence[int]]) -> tuple[list[int], list[int]]:
    """(contact ids, tag ids) as two parallel lists."""
    contacts: list[int] = []
    tags: list[int] = []
    for tag, ids in by_tag.items():
        contacts += ids
        tags += [tag.id] * len(ids)
    return contacts, tags


def _array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal: joined in C, bound as one string (psycopg would adapt a
    list of a hundred thousand ints element by element in Python)."""
    return "{" + ",".join(map(str, values)) + "}"


def _writer(*, operation: uuid.UUID, actor, source: str, source_ref: str) -> _Writer:
    """The writer for this database's dialect."""
    dialect = _PostgresWriter if connection.vendor == "postgresql" else _PortableWriter
    return dialect(operation=operation, actor=actor, source=source, source_ref=source_ref)


class _Writer:
    """The SQL behind the functions above: assignments and their history, in step.

    ``_PostgresWriter`` does both in one statement (a data-modifying CTE with
    RETURNING); ``_PortableWriter`` (SQLite, whose writers are serialised) writes
    the history first from the same condition inside the same transaction.
    """

    history_cols = (
        "(contact_id, tag_id, action, reason, replaced, source_ref, operation, actor_id, at)"
    )
    insert_cols = "(contact_id, tag_id, assigned_at, source, source_ref, actor_id, expires_at)"

    def __init__(self, *, operation: uuid.UUID, actor, source: str, source_ref: str):
        qn = connection.ops.quote_name
        self.operation, self.actor, self.source = operation, actor, source
        self.a = qn(TagAssignment._meta.db_table)
        self.h = qn(AssignmentHistory._meta.db_table)
        self.c = qn(Contact._meta.db_table)
        self.now = _db(AssignmentHistory, "at", timezone.now())
        self.meta = [
            source, source_ref, _db(AssignmentHistory, "operation", operation),
            getattr(actor, "pk", None), self.now,
        ]

    def _in(self, column: str, values: list[int]) -> tuple[str, list]:
        raise NotImplementedError

    def _execute(self, sql: str, params: list) -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return max(cursor.rowcount, 0)

    def remove(self, contact_ids: list[int], tag_ids: list[int], replaced: bool = False) -> int:
        c_sql, c_params = self._in("contact_id", contact_ids)
        t_sql, t_params = self._in("tag_id", tag_ids)
        return self.remove_where(f"{c_sql} AND {t_sql}", c_params + t_params, replaced=replaced)

    def remove_where(self, where: str, params: list, replaced: bool = False) -> int:
        """Delete the assignments ``where`` selects, with a history row each."""
        raise NotImplementedError

    def add(self, contact_ids: list[int], tag_id: int, expires_at: datetime | None) -> int:
        """Give ``tag_id`` to the existing contacts among ``contact_ids`` that lack it."""
        raise NotImplementedError

    def change_pairs(self, add: Mapping[Tag, Sequence[int]], remove: Mapping[Tag, Sequence[int]],
                     expiry: dict[int, datetime | None],
                     meanwhile: Callable[[], None] | None) -> tuple[int, int, int]:
        """``tags_change_pairs``' writes; returns (removed, replaced, added)."""
        raise NotImplementedError

    def undo(self, operation: uuid.UUID) -> tuple[int, int]:
        """Take back ``operation``; returns (removed, added)."""
        return self.undo_added(operation), self.undo_removed(operation)

    def undo_added(self, operation: uuid.UUID) -> int:
        op = _db(AssignmentHistory, "operation", operation)
        return self.remove_where(
            f"EXISTS (SELECT 1 FROM {self.h} h WHERE h.operation = %s AND h.action = 'added' "
            f"AND h.contact_id = {self.a}.contact_id AND h.tag_id = {self.a}.tag_id)",
            [op],
        )

    def undo_removed(self, operation: uuid.UUID) -> int:
        source, source_ref, new_op, actor_id, now = self.meta
        op = _db(AssignmentHistory, "operation", operation)
        hist_values = ["added", source, False, source_ref, new_op, actor_id, now]
        candidates = (
            f"FROM {self.h} h WHERE h.operation = %s AND h.action = 'removed' "
            f"AND EXISTS (SELECT 1 FROM {self.c} c WHERE c.id = h.contact_id) "
            f"AND NOT EXISTS (SELECT 1 FROM {self.a} a "
            f"WHERE a.contact_id = h.contact_id AND a.tag_id = h.tag_id)"
        )
        count = self._execute(
            f"INSERT INTO {self.h} {self.history_cols} "
            f"SELECT h.contact_id, h.tag_id, %s, %s, %s, %s, %s, %s, %s {candidates}",
            [*hist_values, op],
        )
        self._execute(
            f"INSERT INTO {self.a} (contact_id, tag_id, assigned_at, source, source_ref, actor_id) "
            f"SELECT h.contact_id, h.tag_id, %s, %s, %s, %s {candidates}",
            [now, source, source_ref, actor_id, op],
        )
        return count


class _PortableWriter(_Writer):
    """SQLite (and any database without data-modifying CTEs): history first, then the
    assignments, from the same condition in the same transaction."""

    def _in(self, column: str, values: list[int]) -> tuple[str, list]:
        return f"{column} IN ({','.join(['%s'] * len(values))})", list(values)

    def remove_where(self, where: str, params: list, replaced: bool = False) -> int:
        source, source_ref, op, actor_id, now = self.meta
        hist_values = ["removed", source, replaced, source_ref, op, actor_id, now]
        select = "SELECT contact_id, tag_id, %s, %s, %s, %s, %s, %s, %s"
        count = self._execute(
            f"INSERT INTO {self.h} {self.history_cols} {select} FROM {self.a} WHERE {where}",
            hist_values + params,
        )
        self._execute(f"DELETE FROM {self.a} WHERE {where}", params)
        return count

    def add(self, contact_ids: list[int], tag_id: int, expires_at: datetime | None) -> int:
        source, source_ref, op, actor_id, now = self.meta
        c_sql, c_params = self._in("c.id", contact_ids)
        hist_values = ["added", source, False, source_ref, op, actor_id, now]
        missing = (
            f"FROM {self.c} c WHERE {c_sql} AND NOT EXISTS "
            f"(SELECT 1 FROM {self.a} a WHERE a.contact_id = c.id AND a.tag_id = %s)"
        )
        count = self._execute(
            f"INSERT INTO {self.h} {self.history_cols} "
            f"SELECT c.id, %s, %s, %s, %s, %s, %s, %s, %s {missing}",
            [tag_id, *hist_values, *c_params, tag_id],
        )
        self._execute(
            f"INSERT INTO {self.a} {self.insert_cols} "
            f"SELECT c.id, %s, %s, %s, %s, %s, %s {missing}",
            [tag_id, now, source, source_ref, actor_id,
             _db(TagAssignment, "expires_at", expires_at), *c_params, tag_id],
        )
        return count

    def change_pairs(self, add, remove, expiry, meanwhile) -> tuple[int, int, int]:
        """Tag by tag through ``remove`` and ``add``; ``meanwhile`` runs after."""
        removed = replaced = added = 0
        for tag, ids in remove.items():
            removed += self.remove(list(ids), [tag.pk])
        for tag, ids in add.items():
            rivals = _rivals(tag) if tag.dimension.single_choice else []
            if rivals:
                replaced += self.remove(list(ids), rivals, replaced=True)
            added += self.add(list(ids), tag.pk, expires_at=expiry[tag.pk])
        if meanwhile:
            meanwhile()
        return removed, replaced, added


class _PostgresWriter(_Writer):
    """PostgreSQL: each change and its history in one statement (a data-modifying CTE);
    ids travel as one array literal each."""

    # (contact, tag) pairs as two arrays, one statement each (None: none).
    _PAIRS = "unnest(%s::bigint[], %s::bigint[]) AS p(contact_id, tag_id)"

    def _in(self, column: str, values: list[int]) -> tuple[str, list]:
        return f"{column} = ANY(%s::bigint[])", [_array(values)]

    def remove_where(self, where: str, params: list, replaced: bool = False) -> int:
        return self._execute(*self._remove_statement(where, params, replaced))

    def _remove_statement(self, where: str, params: list, replaced: bool) -> Statement:
        source, source_ref, op, actor_id, now = self.meta
        return (
            f"WITH gone AS (DELETE FROM {self.a} WHERE {where} RETURNING contact_id, tag_id) "
            f"INSERT INTO {self.h} {self.history_cols} SELECT contact_id, tag_id, "
            "%s, %s, %s, %s, %s, %s, %s FROM gone",
            [*params, "removed", source, replaced, source_ref, op, actor_id, now],
        )

    def add(self, contact_ids: list[int], tag_id: int, expires_at: datetime | None) -> int:
        source, source_ref, op, actor_id, now = self.meta
        c_sql, c_params = self._in("c.id", contact_ids)
        expiry = _db(TagAssignment, "expires_at", expires_at)
        hist_values = ["added", source, False, source_ref, op, actor_id, now]
        return self._execute(
            f"WITH ins AS (INSERT INTO {self.a} {self.insert_cols} "
            f"SELECT c.id, %s, %s, %s, %s, %s, %s FROM {self.c} c WHERE {c_sql} "
            f"ON CONFLICT (contact_id, tag_id) DO NOTHING RETURNING contact_id, tag_id) "
            f"INSERT INTO {self.h} {self.history_cols} "
            f"SELECT contact_id, tag_id, %s, %s, %s, %s, %s, %s, %s FROM ins",
            [tag_id, now, source, source_ref, actor_id, expiry, *c_params, *hist_values],
        )

    def undo(self, operation: uuid.UUID) -> tuple[int, int]:
        # The operation's pairs are found through the unique index one by one; at the
        # default random_page_cost (spinning disks) the planner would rather read all
        # ten million assignments. The indexes are in memory: cost them so.
        self._execute("SET LOCAL random_page_cost = 1.1", [])
        return super().undo(operation)

    def change_pairs(self, add, remove, expiry, meanwhile) -> tuple[int, int, int]:
        """Three statements whatever the number of tags, in one pipeline."""
        single = {tag: ids for tag, ids in add.items() if tag.dimension.single_choice}
        removed, replaced, added = self.pipeline([
            self.remove_pairs(_pairs(remove)),
            self.replace_pairs(_pairs(single)),
            self.add_pairs(_pairs(add), expiry),
        ], meanwhile)
        return removed, replaced, added

    def pipeline(self, statements: list[Statement | None],
                 meanwhile: Callable[[], None] | None = None) -> list[int]:
        """Run ``statements`` in one psycopg pipeline and return their row counts; the
        statements are sent at once and ``meanwhile`` runs on this thread while PostgreSQL
        works on them (a second thread would compete for the GIL instead)."""
        cursors = []
        try:
            # Errors surface when the pipeline syncs on leaving: as Django's, like execute's.
            with connection.wrap_database_errors, connection.connection.pipeline():
                for statement in statements:
                    cursors.append(connection.cursor() if statement else None)
                    if statement:
                        cursors[-1].execute(*statement)
                if meanwhile:
                    meanwhile()
            return [max(c.rowcount, 0) if c else 0 for c in cursors]  # synced on leaving
        finally:
            for cursor in filter(None, cursors):
                cursor.close()

    def remove_pairs(self, pairs: tuple[list[int], list[int]]) -> Statement | None:
        if not pairs[0]:
            return None
        return self._remove_statement(
            f"(contact_id, tag_id) IN (SELECT p.contact_id, p.tag_id FROM {self._PAIRS})",
            [_array(p) for p in pairs], replaced=False)

    def replace_pairs(self, pairs: tuple[list[int], list[int]]) -> Statement | None:
        """Remove, as replaced, each contact's other tags of the single-choice dimension."""
        if not pairs[0]:
            return None
        t = connection.ops.quote_name(Tag._meta.db_table)
        return self._remove_statement(
            f"(contact_id, tag_id) IN (SELECT p.contact_id, r.id FROM {self._PAIRS} "
            f"JOIN {t} n ON n.id = p.tag_id JOIN {t} r ON r.dimension_id = n.dimension_id "
            "AND r.id <> n.id)", [_array(p) for p in pairs], replaced=True)

    def add_pairs(self, pairs: tuple[list[int], list[int]],
                  expiry: dict[int, datetime | None]) -> Statement | None:
        if not pairs[0]:
            return None
        source, source_ref, op, actor_id, now = self.meta
        lifetimes = {t: _db(TagAssignment, "expires_at", e) for t, e in expiry.items() if e}
        # Tag lifetimes are few: a CASE per tag, not a timestamp per pair.
        expires = " ".join(f"WHEN {int(t)} THEN %s::timestamptz" for t in lifetimes)
        expires = f"CASE p.tag_id {expires} END" if lifetimes else "NULL::timestamptz"
        hist_values = ["added", source, False, source_ref, op, actor_id, now]
        return (
            f"WITH ins AS (INSERT INTO {self.a} {self.insert_cols} "
            f"SELECT p.contact_id, p.tag_id, %s, %s, %s, %s, {expires} FROM {self._PAIRS} "
            # Existing contacts only, each looked up once (a batch names each several times).
            f"WHERE p.contact_id IN (SELECT c.id FROM {self.c} c WHERE c.id = ANY(%s::bigint[])) "
            "ON CONFLICT (contact_id, tag_id) DO NOTHING RETURNING contact_id, tag_id) "
            f"INSERT INTO {self.h} {self.history_cols} "
            "SELECT contact_id, tag_id, %s, %s, %s, %s, %s, %s, %s FROM ins",
            [now, source, source_ref, actor_id, *lifetimes.values(),
             *[_array(p) for p in pairs], _array(set(pairs[0])), *hist_values],
        )


# --- Privacy: erasing a contact's tags (crm.privacy) --------------------------------------

def contact_tags_erase(*, contact_id: int) -> int:
    """Delete an erased contact's assignments and their whole history, writing no new
    history (nothing of the person may stay); return how many rows went.

    Tag counts fall by one as for any removal; the index's change log sees the delete.
    """
    assignments = TagAssignment.objects.filter(contact_id=contact_id).delete()[0]
    return assignments + AssignmentHistory.objects.filter(contact_id=contact_id).delete()[0]
