"""Per-tag roaring bitmaps in each process: tag expressions counted in milliseconds.

Every process keeps, for each tag, the set of contacts holding it as a
compressed bitmap (``pyroaring``), plus the set of all contacts. ``"A" AND NOT
("B" OR "C")`` is then two bitmap operations over a million contacts instead of
semi-joins over ten million assignment rows.

How the bitmaps stay exactly right. Statement-level triggers on
``tagging_tagassignment`` and ``crm_contact`` append one row per statement to
``audiences_tagchange``: the (contact, tag) pairs the statement touched (tag 0
stands for the contact itself) and the writing transaction's id. A reader
remembers the PostgreSQL snapshot its bitmaps reflect. Before each answer a
prepared probe asks whether any change row is invisible to that snapshot; only
then does it catch up, in one statement that takes a new snapshot, reads the
change rows of transactions the old snapshot did not see, and re-reads the
*current* truth of each touched pair in that same snapshot, so commit order
never matters. Nothing is locked and
writers pay one narrow INSERT per statement, which is why this replaced the
trigger-maintained array table (the array rewrites were ~60% of a bulk change).

A transaction that has written and not committed sees its own changes; the
shared bitmaps must not, so ``usable()`` refuses while the connection holds
uncommitted writes and callers fall back to SQL (``EXISTS``), which is also the
reference implementation and the only path on SQLite.

Contact fields that expressions test (purchases, dates, gender, country …)
are held the same way, as columns indexed by contact id (``numpy``), loaded
on first use and kept by the same change log (an UPDATE of a contact logs it),
so ``"VIP" AND NOT last_interaction within 180d`` never touches the database
beyond the catch-up. The change log and its triggers are installed by the
migration ``audiences.0002_change_log``.

Change rows older than an hour are pruned (``changes_prune``, hourly beat);
a process that has not caught up for 45 minutes rebuilds from scratch.
"""

from __future__ import annotations

import sys
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import psycopg
from django.db import connection
from pyroaring import BitMap

from tagging.audiences.metrics import INDEX_REFRESH_SECONDS
from tagging.services import assignments_orphans_remove

CONTACT = 0  # the tag id that stands for "this contact exists"
STALE_AFTER = 45 * 60  # seconds without a catch-up before a full rebuild
KEEP = "1 hour"  # change rows younger than this (and a snapshot that old) are kept
EMPTY = BitMap()
NULL = np.iinfo(np.int64).min  # a missing value in a numeric column

# Contact columns the index can hold. Numbers and times as int8 (times in microseconds
# since 1970, dates in days), compared exactly as PostgreSQL compares them.
NUMERIC = {
    "purchase_count": "purchase_count::int8",
    "is_blocked": "is_blocked::int::int8",
    "birth_date": "(birth_date - date '1970-01-01')::int8",
    **{c: f"(extract(epoch from {c}) * 1000000)::int8" for c in (
        "first_purchase_at", "last_purchase_at", "last_interaction_at", "last_read_at",
        "last_reply_at", "created_at", "joined_at")},
}
TEXT = ("gender", "country", "language", "city", "consent_status")

# Most counts find nothing new: one indexed probe (prepared once per connection) says so
# and moves the snapshot on, without the catch-up's planning and unions.
_NEWS = """
SELECT pg_current_snapshot()::text,
       EXISTS (SELECT 1 FROM audiences_tagchange
                WHERE xid >= pg_snapshot_xmin(%(prev)s::text::pg_snapshot)
                  AND NOT pg_visible_in_snapshot(xid, %(prev)s::text::pg_snapshot))
"""

# One statement, one snapshot: the truth of every pair touched since ``prev``, and the
# current values of the held columns of every contact touched.
_CATCH_UP = """
WITH s AS (SELECT pg_current_snapshot() AS snap),
changes AS (
    SELECT ch.contact_ids, ch.tag_ids FROM audiences_tagchange ch
     WHERE ch.xid >= pg_snapshot_xmin(%(prev)s::pg_snapshot)
       AND NOT pg_visible_in_snapshot(ch.xid, %(prev)s::pg_snapshot)),
pairs AS (
    SELECT DISTINCT u.contact_id, u.tag_id
      FROM changes, unnest(changes.contact_ids, changes.tag_ids) AS u(contact_id, tag_id))
SELECT s.snap::text, (SELECT count(*) FROM changes WHERE contact_ids IS NULL),
       NULL::bigint, NULL::bigint, NULL::bool {nulls}
  FROM s
UNION ALL
SELECT NULL, NULL, p.contact_id, p.tag_id,
       EXISTS (SELECT 1 FROM tagging_tagassignment a
                WHERE a.contact_id = p.contact_id AND a.tag_id = p.tag_id)
       AND EXISTS (SELECT 1 FROM crm_contact c WHERE c.id = p.contact_id) {nulls}
  FROM pairs p WHERE p.tag_id <> 0
UNION ALL
SELECT NULL, NULL, p.contact_id, 0, c.id IS NOT NULL {columns}
  FROM pairs p LEFT JOIN crm_contact c ON c.id = p.contact_id WHERE p.tag_id = 0
"""

# One statement, one snapshot: every tag's contacts as 4-byte big-endian ids; with
# ``fields``, every held column too, aggregated in one pass over the contacts in id order
# (a sorted subquery feeds the aggregates; the order is checked after reading).
_BUILD = """
WITH s AS (SELECT pg_current_snapshot()::text AS snap), {texts}
t AS (SELECT array_agg(tag_id) AS tag_ids, array_agg(blob) AS blobs
        FROM (SELECT tag_id, string_agg(substring(int8send(contact_id) from 5), ''::bytea) blob
                FROM tagging_tagassignment GROUP BY tag_id) g),
c AS (SELECT coalesce(max(id), 0) AS max_id,
             string_agg(substring(int8send(id) from 5), ''::bytea) AS ids {columns}
        FROM (SELECT {select} FROM crm_contact ct {joins} ORDER BY ct.id) x)
SELECT s.snap, c.*, t.tag_ids, t.blobs {values} FROM s, c, t
"""


def _build_sql(fields: bool) -> str:
    if not fields:
        return _BUILD.format(texts="", columns="", select="id", joins="", values="")
    # Text as codes into its sorted distinct values (one small table per field, hash-joined).
    texts = "".join(
        f"v_{n} AS (SELECT v, (row_number() OVER (ORDER BY v) - 1)::int4 AS code"
        f" FROM (SELECT DISTINCT {n} AS v FROM crm_contact) d), " for n in TEXT)
    columns = "".join(
        f", string_agg(int8send(coalesce({expr}, {NULL})), ''::bytea)" for expr in NUMERIC.values())
    columns += "".join(f", string_agg(int4send(code_{n}), ''::bytea)" for n in TEXT)
    select = ", ".join(["ct.id", *(f"ct.{n}" for n in NUMERIC),
                        *(f"v_{n}.code AS code_{n}" for n in TEXT)])
    joins = "".join(f" JOIN v_{n} ON v_{n}.v = ct.{n}" for n in TEXT)
    values = "".join(f", (SELECT array_agg(v ORDER BY code) FROM v_{n})" for n in TEXT)
    return _BUILD.format(texts=texts, columns=columns, select=select, joins=joins, values=values)


class TextColumn:
    """A text field as integer codes per contact id; -1 where there is no contact."""

    def __init__(self, size: int):
        self.codes = np.full(size, -1, dtype=np.int32)
        self.lookup: dict[str, int] = {}

    def code(self, value: str) -> int:
        return self.lookup.setdefault(value, len(self.lookup))

    def equal(self, value: str) -> np.ndarray:
        code = self.lookup.get(value)
        return np.zeros(len(self.codes), dtype=bool) if code is None else self.codes == code


def to_bitmap(mask: np.ndarray) -> BitMap:
    """The ids (positions) where ``mask`` is true."""
    ids = array("I")
    ids.frombytes(np.flatnonzero(mask).astype(np.uint32).tobytes())
    return BitMap(ids)


def _decode(blob: bytes | None) -> BitMap:
    ids = array("I")
    ids.frombytes(blob or b"")
    if sys.byteorder == "little":
        ids.byteswap()
    return BitMap(ids)


class TagBitmaps:
    """The bitmaps of one process, and the snapshot they reflect."""

    def __init__(self):
        self.lock = threading.Lock()
        self.snapshot: str | None = None
        self.synced_at = 0.0
        self.contacts = BitMap()
        self.tags: dict[int, BitMap] = {}
        self.fields = False  # the contact fields are held too (from the first one asked for)
        self.numeric: dict[str, np.ndarray] = {}
        self.text: dict[str, TextColumn] = {}
        self.exists = np.zeros(0, dtype=bool)  # with the fields: True at each contact's id

    def tag(self, tag_id: int) -> BitMap:
        return self.tags.get(tag_id, EMPTY)

    def any_of(self, tag_ids: Iterable[int]) -> BitMap:
        return BitMap.union(EMPTY, *(self.tag(t) for t in tag_ids))

    def refresh(self, columns: Iterable[str] = ()) -> str:
        """Catch up with every committed change (or rebuild when too far behind); return
        what it took: "probe" (nothing new), "catch_up" or "build"."""
        missing = bool(columns) and not self.fields
        if missing or self.snapshot is None or time.monotonic() - self.synced_at > STALE_AFTER:
            self.fields |= missing  # the first field asked for loads all of them
            self._build()
            return "build"
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:  # server-side binding
            cursor.execute(_NEWS, {"prev": self.snapshot}, prepare=True)
            snap, news = cursor.fetchone()
        if not news:
            self.snapshot, self.synced_at = snap, time.monotonic()
            return "probe"
        held = [*self.numeric, *self.text]
        # Unqualified: only crm_contact has these names in the catch-up's contact branch.
        columns = "".join(f", {name}" if name in self.text else f", {NUMERIC[name]}"
                          for name in held)
        nulls = "".join(", NULL::text" if name in self.text else ", NULL::bigint" for name in held)
        with connection.cursor() as cursor:
            cursor.execute(_CATCH_UP.format(columns=columns, nulls=nulls),
                           {"prev": self.snapshot})
            rows = cursor.fetchall()
        head = next(row for row in rows if row[0] is not None)
        if head[1]:  # a TRUNCATE happened
            self._build()
            return "build"
        gone = BitMap()
        for _snap, _reset, contact_id, tag_id, holds, *values in rows:
            if contact_id is None:
                continue
            if tag_id == CONTACT:
                self._contact_set(contact_id, values if holds else None, held)
                if not holds:
                    gone.add(contact_id)
            else:
                target = self.tags.setdefault(tag_id, BitMap())
                (target.add if holds else target.discard)(contact_id)
        if gone:  # an assignment a deleted contact left behind is never counted
            for bitmap in self.tags.values():
                bitmap.difference_update(gone)
        self.snapshot, self.synced_at = head[0], time.monotonic()
        return "catch_up"

    def _contact_set(self, contact_id: int, values: list | None, held: list[str]) -> None:
        if values is None:
            self.contacts.discard(contact_id)
        else:
            self.contacts.add(contact_id)
        if not self.numeric:  # no fields held yet
            return
        if contact_id >= len(self.exists):
            self._grow(contact_id + 1)
        self.exists[contact_id] = values is not None
        for name, value in zip(held, values or [None] * len(held), strict=True):
            if name in self.numeric:
                self.numeric[name][contact_id] = NULL if value is None else value
            else:
                column = self.text[name]
                column.codes[contact_id] = -1 if value is None else column.code(value)

    def _grow(self, needed: int) -> None:
        size = max(needed, int(len(self.exists) * 1.25))
        for name, column in self.numeric.items():
            grown = np.full(size, NULL, dtype=np.int64)
            grown[: len(column)] = column
            self.numeric[name] = grown
        for column in self.text.values():
            grown = np.full(size, -1, dtype=np.int32)
            grown[: len(column.codes)] = column.codes
            column.codes = grown
        exists = np.zeros(size, dtype=bool)
        exists[: len(self.exists)] = self.exists
        self.exists = exists

    def _build(self) -> None:
        fields = self.fields
        connection.ensure_connection()
        # A plain psycopg cursor (Django's binds client-side, which cannot return binary):
        # bytea then arrives as it is, not as hex text twice its size.
        with psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(_build_sql(fields), binary=True)
            snap, max_id, blob, *rest = cursor.fetchone()
        if max_id >= 2**32:
            raise OverflowError("contact ids beyond 2**32 need BitMap64")
        ids = np.frombuffer(blob or b"", dtype=">u4").astype(np.int64)
        if len(ids) > 1 and not np.all(ids[1:] > ids[:-1]):
            raise RuntimeError("contacts were not aggregated in id order")
        size = max_id + 1
        self.contacts = _decode(blob)
        self.numeric, self.text = {}, {}
        self.exists = np.zeros(size if fields else 0, dtype=bool)
        self.exists[ids if fields else []] = True
        if fields:
            for name in NUMERIC:
                column = np.full(size, NULL, dtype=np.int64)
                column[ids] = np.frombuffer(rest.pop(0) or b"", dtype=">i8")
                self.numeric[name] = column
            codes = [rest.pop(0) for _name in TEXT]
        tag_ids, blobs = rest.pop(0) or [], rest.pop(0) or []
        # Only existing contacts: assignments have no foreign key (tagging migration 0002).
        self.tags = {tag_id: _decode(b) & self.contacts
                     for tag_id, b in zip(tag_ids, blobs, strict=True)}
        if fields:
            for name, blob_codes, values in zip(TEXT, codes, rest, strict=True):
                text = TextColumn(size)
                for value in values or ():  # codes are positions in the sorted values
                    text.code(value)
                text.codes[ids] = np.frombuffer(blob_codes or b"", dtype=">i4")
                self.text[name] = text
        self.snapshot, self.synced_at = snap, time.monotonic()


_index = TagBitmaps()


def usable() -> bool:
    """True where bitmaps may answer: PostgreSQL, with no uncommitted writes of our own."""
    if connection.vendor != "postgresql":
        return False
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NULL")
            return cursor.fetchone()[0]
    return True


@contextmanager
def reading(columns: Iterable[str] = ()) -> Iterator[TagBitmaps]:
    """This process's index, up to date, held still while the caller reads it."""
    with _index.lock:
        _refresh(columns)
        yield _index


def current(columns: Iterable[str] = ()) -> TagBitmaps:
    """This process's bitmaps (and ``columns``), brought up to date.

    The caller checked ``usable()``. The result is shared: read it, don't change it.
    """
    with _index.lock:
        _refresh(columns)
        return _index


def _refresh(columns: Iterable[str]) -> None:
    started = time.monotonic()
    kind = _index.refresh(columns)
    INDEX_REFRESH_SECONDS.labels(kind=kind).observe(time.monotonic() - started)


def age_seconds() -> float | None:
    """Seconds since this process's index last caught up; ``None`` when it was never built."""
    return None if _index.snapshot is None else time.monotonic() - _index.synced_at


def changes_prune() -> int:
    """Delete change rows every reader has certainly seen; returns how many.

    Rows are deleted only below the oldest running transaction of a snapshot
    recorded at least ``KEEP`` ago, so a reader that caught up within
    ``STALE_AFTER`` has seen all of them.
    """
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT snapshot::text, at < now() - interval '{KEEP}' FROM audiences_tagchangeprune "
            "WHERE id = 1"
        )
        row = cursor.fetchone()
        deleted = 0
        if row and row[1]:
            # Assignments a writer added while their contact or tag was being deleted: the
            # contact's deletion (tag 0), or the assignment itself, is in these rows.
            cursor.execute(
                "SELECT array_agg(DISTINCT u.contact_id) FILTER (WHERE u.tag_id = 0),"
                " array_agg(DISTINCT u.tag_id) FILTER (WHERE u.tag_id <> 0)"
                " FROM audiences_tagchange ch, unnest(ch.contact_ids, ch.tag_ids)"
                " AS u(contact_id, tag_id) WHERE ch.xid < pg_snapshot_xmin(%s::pg_snapshot)",
                [row[0]])
            contacts, tags = cursor.fetchone()
            assignments_orphans_remove(contact_ids=contacts or [], tag_ids=tags or [])
            cursor.execute(
                "DELETE FROM audiences_tagchange WHERE xid < pg_snapshot_xmin(%s::pg_snapshot)",
                [row[0]],
            )
            deleted = cursor.rowcount
        if row is None or row[1]:
            cursor.execute(
                "INSERT INTO audiences_tagchangeprune (id, snapshot, at) "
                "VALUES (1, pg_current_snapshot(), now()) "
                "ON CONFLICT (id) DO UPDATE SET snapshot = EXCLUDED.snapshot, at = EXCLUDED.at"
            )
        return deleted
