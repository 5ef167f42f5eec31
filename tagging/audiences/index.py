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
a process that has not caught up for 45 minutes starts again.

Starting. A new process does not build from scratch when it can help it: it loads
the snapshot another process stored (``snapshot_save``, in PostgreSQL through
``snapshot``: bitmaps and columns with the PostgreSQL snapshot they reflect) and
catches up from there through the same change log. A missing, corrupt, other-format
or too old snapshot (the change log no longer reaches back to it) means a full
build, said in a log line. A build reads in a repeatable-read transaction of its
own, streamed (one tag at a time; the fields by binary COPY), so the process holds
the index and not its transfer. Nothing is built at import or for one contact's
membership (``selectors.contact_matches`` uses the index only once it is held).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import psycopg
from django.conf import settings
from django.db import connection
from pyroaring import BitMap

from tagging.audiences import snapshot
from tagging.audiences.metrics import INDEX_REFRESH_SECONDS
from tagging.services import assignments_orphans_remove

log = logging.getLogger(__name__)
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _libc.malloc_trim  # noqa: B018 - glibc only
except (OSError, AttributeError):
    _libc = None

CONTACT = 0  # the tag id that stands for "this contact exists"
STALE_AFTER = 45 * 60  # seconds without a catch-up before a full rebuild
KEEP = "1 hour"  # change rows younger than this (and a snapshot that old) are kept
EMPTY = BitMap()
NULL = np.iinfo(np.int64).min  # a missing value in a numeric column (as read from SQL)
SAVE_EVERY: float | None = 10 * 60  # seconds between saves of the shared snapshot (None: never)
FORMAT = 1  # of the stored snapshot; another number is not read

# Contact columns the index can hold. Numbers and times as int8 (times in microseconds
# since 1970, dates in days), compared exactly as PostgreSQL compares them; held in the
# narrowest type their SQL type fits (``DTYPES``), a missing value as that type's minimum.
NUMERIC = {
    "purchase_count": "purchase_count::int8",
    "is_blocked": "is_blocked::int::int8",
    "birth_date": "(birth_date - date '1970-01-01')::int8",
    **{c: f"(extract(epoch from {c}) * 1000000)::int8" for c in (
        "first_purchase_at", "last_purchase_at", "last_interaction_at", "last_read_at",
        "last_reply_at", "created_at", "joined_at")},
}
DTYPES = {"purchase_count": np.dtype(np.int32), "is_blocked": np.dtype(np.int8),
          "birth_date": np.dtype(np.int32)}
TEXT = ("gender", "country", "language", "city", "consent_status")


def dtype_of(name: str) -> np.dtype:
    return DTYPES.get(name, np.dtype(np.int64))


def null_of(column: np.ndarray) -> int:
    """The value that stands for "no value" in a numeric column (its type's minimum)."""
    return int(np.iinfo(column.dtype).min)

# Most counts find nothing new: one indexed probe (prepared once per connection) says so
# and moves the snapshot on, without the catch-up's planning and unions.
_NEWS = """
SELECT pg_current_snapshot()::text, extract(epoch from clock_timestamp())::float8,
       EXISTS (SELECT 1 FROM audiences_tagchange
                WHERE xid >= pg_snapshot_xmin(%(prev)s::text::pg_snapshot)
                  AND NOT pg_visible_in_snapshot(xid, %(prev)s::text::pg_snapshot))
"""

# One statement, one snapshot: per touched tag, the touched contacts that hold it now and
# those that do not (4-byte big-endian ids, applied as bitmaps), and the current values of the
# held columns of every contact touched. A pair one statement alone touched since ``prev``
# takes that statement's effect (``op``: I inserted, D deleted; audiences.0004); a pair
# touched more than once, or by an UPDATE, is re-read from the assignments. Set-based: a
# bulk change of 100,000 contacts is one grouping and one bitmap union per tag, no lookups.
# Contacts that exist are the index's own (``contacts``, kept by the contact rows below).
_CATCH_UP = """
WITH s AS (SELECT pg_current_snapshot() AS snap, extract(epoch from clock_timestamp()) AS at),
changes AS (
    SELECT ch.contact_ids, ch.tag_ids, ch.op FROM audiences_tagchange ch
     WHERE ch.xid >= pg_snapshot_xmin(%(prev)s::text::pg_snapshot)
       AND NOT pg_visible_in_snapshot(ch.xid, %(prev)s::text::pg_snapshot)),
pairs AS (
    SELECT u.contact_id, u.tag_id, count(*) = 1 AND bool_and(changes.op = 'I') AS inserted,
           count(*) = 1 AND bool_and(changes.op = 'D') AS deleted
      FROM changes, unnest(changes.contact_ids, changes.tag_ids) AS u(contact_id, tag_id)
     GROUP BY u.contact_id, u.tag_id),
tagged AS (
    SELECT p.tag_id, p.contact_id,
           CASE WHEN p.inserted THEN true WHEN p.deleted THEN false
                ELSE EXISTS (SELECT 1 FROM tagging_tagassignment a
                              WHERE a.contact_id = p.contact_id AND a.tag_id = p.tag_id)
           END AS holds
      FROM pairs p
     WHERE p.tag_id <> 0)
SELECT s.snap::text, s.at::float8, (SELECT count(*) FROM changes WHERE contact_ids IS NULL),
       NULL::bigint, NULL::bytea, NULL::bytea, NULL::bigint, NULL::bool {nulls}
  FROM s
UNION ALL
SELECT NULL, NULL, NULL, tag_id,
       string_agg(substring(int8send(contact_id) from 5), ''::bytea) FILTER (WHERE holds),
       string_agg(substring(int8send(contact_id) from 5), ''::bytea) FILTER (WHERE NOT holds),
       NULL, NULL {nulls}
  FROM tagged GROUP BY tag_id
UNION ALL
SELECT NULL, NULL, NULL, NULL, NULL, NULL, p.contact_id, c.id IS NOT NULL {columns}
  FROM pairs p LEFT JOIN crm_contact c ON c.id = p.contact_id WHERE p.tag_id = 0
"""


# A build reads in one repeatable-read transaction of its own (one snapshot for all of it),
# streamed so that no more than one tag's bytes, or a few MB of rows, are in flight at once:
# the process's memory then holds the index, not the index plus its whole transfer.
_BUILD_HEAD = """
SELECT pg_current_snapshot()::text, extract(epoch from clock_timestamp())::float8,
       coalesce(max(id), 0), string_agg(substring(int8send(id) from 5), ''::bytea ORDER BY id)
  FROM crm_contact
"""
# Each tag's contacts as 4-byte big-endian ids, one row per tag (a server-side cursor).
_BUILD_TAGS = """
SELECT tag_id, string_agg(substring(int8send(contact_id) from 5), ''::bytea)
  FROM tagging_tagassignment GROUP BY tag_id
"""
# Text fields as codes into their sorted distinct values (``_TEXT_VALUES``, same snapshot).
_TEXT_VALUES = "SELECT array_agg(DISTINCT {name} ORDER BY {name}) FROM crm_contact"


def _columns_copy_sql() -> str:
    """Every held column of every contact, fixed width (``_RECORD``), in binary COPY."""
    texts = ", ".join(
        f"v_{n} AS (SELECT v, (row_number() OVER (ORDER BY v) - 1)::int4 AS code"
        f" FROM (SELECT DISTINCT {n} AS v FROM crm_contact) d)" for n in TEXT)
    numeric = "".join(f", {_COPIED[name][0]}" for name in NUMERIC)
    codes = "".join(f", v_{n}.code" for n in TEXT)
    joins = "".join(f" JOIN v_{n} ON v_{n}.v = ct.{n}" for n in TEXT)
    # Unqualified names in NUMERIC: only crm_contact has them here.
    return (f"COPY (WITH {texts} SELECT ct.id{numeric}{codes} FROM crm_contact ct{joins})"
            " TO STDOUT (FORMAT binary)")


# One COPY row: field count, then (length, value) per field; nothing is NULL (coalesced).
# How COPY sends each numeric column: times and dates as PostgreSQL stores them (binary:
# microseconds or days since 2000-01-01, a missing one as -infinity = the type's minimum),
# moved to 1970 here, which spares the server a numeric ``extract(epoch …)`` per value.
_PG_EPOCH_US, _PG_EPOCH_DAYS = 946_684_800_000_000, 10_957
_COPIED = {
    name: (f"coalesce({name}, '-infinity')", ">i8", _PG_EPOCH_US) if name.endswith("_at")
    else (f"coalesce({name}, '-infinity'::date)", ">i4", _PG_EPOCH_DAYS) if name == "birth_date"
    else (f"coalesce({expr}, {NULL})::int8", ">i8", 0)
    for name, expr in NUMERIC.items()
}
_RECORD = np.dtype([("n", ">i2"), ("id_len", ">i4"), ("id", ">i8"),
                    *((f, t) for name in NUMERIC for f, t in ((f"{name}_len", ">i4"),
                                                               (name, _COPIED[name][1]))),
                    *((f, t) for name in TEXT for f, t in ((f"{name}_len", ">i4"),
                                                            (name, ">i4")))])
_COPY_HEADER = 19  # signature (11), flags (4), header extension length (4, zero)


class TextColumn:
    """A text field as integer codes per contact id; -1 where there is no contact.

    Codes are as narrow as the number of distinct values allows (int8 for gender or
    country), widened when a new value needs it."""

    def __init__(self, size: int, values: Iterable[str] = ()):
        self.lookup: dict[str, int] = {}
        for value in values:  # codes are positions in ``values``
            self.lookup.setdefault(value, len(self.lookup))
        self.codes = np.full(size, -1, dtype=self._dtype(len(self.lookup)))

    @staticmethod
    def _dtype(distinct: int) -> np.dtype:
        for dtype in (np.int8, np.int16, np.int32):
            if distinct <= np.iinfo(dtype).max:
                return np.dtype(dtype)
        raise OverflowError("more distinct values than int32 codes")

    def code(self, value: str) -> int:
        code = self.lookup.setdefault(value, len(self.lookup))
        if code > np.iinfo(self.codes.dtype).max:
            self.codes = self.codes.astype(self._dtype(code + 1))
        return code

    def equal(self, value: str) -> np.ndarray:
        code = self.lookup.get(value)
        return np.zeros(len(self.codes), dtype=bool) if code is None else self.codes == code


@contextmanager
def _reading_transaction() -> Iterator[psycopg.Cursor]:
    """A binary cursor in a read-only repeatable-read transaction on a connection of its
    own: a build sees one snapshot, and never runs inside the caller's transaction."""
    with snapshot.connect() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor(binary=True) as cursor:
            # Whole-table reads: plan for all rows (a cursor would otherwise favour a slow
            # index scan), and compile nothing (JIT costs seconds here and saves none).
            cursor.execute("SET LOCAL cursor_tuple_fraction = 1")
            cursor.execute("SET LOCAL jit = off")
            yield cursor
        conn.rollback()


def _release_freed_memory() -> None:
    """Hand the transfer's freed memory back to the system (glibc keeps it otherwise)."""
    if _libc is not None:
        _libc.malloc_trim(0)


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
        self.taken_at = 0.0  # the database's clock (epoch seconds) when ``snapshot`` was taken
        self.synced_at = 0.0
        self.contacts = BitMap()
        self.tags: dict[int, BitMap] = {}
        self.fields = False  # the contact fields are held too (from the first one asked for)
        self.numeric: dict[str, np.ndarray] = {}
        self.text: dict[str, TextColumn] = {}
        self.exists = np.zeros(0, dtype=bool)  # with the fields: True at each contact's id
        self.save_due = 0.0  # monotonic time of the next look at the stored snapshot
        self.saving = False

    def tag(self, tag_id: int) -> BitMap:
        return self.tags.get(tag_id, EMPTY)

    def any_of(self, tag_ids: Iterable[int]) -> BitMap:
        return BitMap.union(EMPTY, *(self.tag(t) for t in tag_ids))

    def refresh(self, columns: Iterable[str] = ()) -> str:
        """Catch up with every committed change; return what it took: "probe" (nothing new),
        "catch_up", "load" (started from the stored snapshot, then caught up) or "build"
        (from scratch: no usable snapshot, too far behind, or a TRUNCATE)."""
        wanted = bool(columns) or self.fields
        kind = None
        if self.snapshot is None or time.monotonic() - self.synced_at > STALE_AFTER:
            if not self._load(wanted):
                self.fields = wanted  # the first field asked for loads all of them
                self._build()
                return "build"
            kind = "load"
        if wanted and not self.fields:
            # Loaded at a newer snapshot than the bitmaps; the catch-up below re-reads every
            # contact changed since the bitmaps' snapshot, which makes them agree.
            self.fields = True
            self._columns_load()
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:  # server-side binding
            cursor.execute(_NEWS, {"prev": self.snapshot}, prepare=True)
            snap, at, news = cursor.fetchone()
        if not news:
            self.snapshot, self.taken_at, self.synced_at = snap, at, time.monotonic()
            return kind or "probe"
        return "build" if self._catch_up() == "build" else kind or "catch_up"

    def _catch_up(self) -> str:
        held = [*self.numeric, *self.text]
        # Unqualified: only crm_contact has these names in the catch-up's contact branch.
        columns = "".join(f", {name}" if name in self.text else f", {NUMERIC[name]}"
                          for name in held)
        nulls = "".join(", NULL::text" if name in self.text else ", NULL::bigint" for name in held)
        connection.ensure_connection()
        with psycopg.Cursor(connection.connection) as cursor:  # bytea as it is (binary)
            cursor.execute(_CATCH_UP.format(columns=columns, nulls=nulls),
                           {"prev": self.snapshot}, binary=True)
            rows = cursor.fetchall()
        head = next(row for row in rows if row[0] is not None)
        if head[2]:  # a TRUNCATE happened
            self._build()
            return "build"
        gone = BitMap()
        for _snap, _at, _reset, _tag, _holding, _left, contact_id, exists, *values in rows:
            if contact_id is not None:  # contacts first: tags count only existing ones
                self._contact_set(contact_id, values if exists else None, held)
                if not exists:
                    gone.add(contact_id)
        if gone:  # an assignment a deleted contact left behind is never counted
            for bitmap in self.tags.values():
                bitmap.difference_update(gone)
        for _snap, _at, _reset, tag_id, holding, left, *_rest in rows:
            if tag_id is not None:
                target = self.tags.setdefault(tag_id, BitMap())
                if left:
                    target -= _decode(left)
                if holding:
                    target |= _decode(holding) & self.contacts
        self.snapshot, self.taken_at, self.synced_at = head[0], head[1], time.monotonic()
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
                column = self.numeric[name]
                column[contact_id] = null_of(column) if value is None else value
            else:
                column = self.text[name]
                code = -1 if value is None else column.code(value)
                column.codes[contact_id] = code

    def _grow(self, needed: int) -> None:
        size = max(needed, int(len(self.exists) * 1.25))
        for name, column in self.numeric.items():
            grown = np.full(size, null_of(column), dtype=column.dtype)
            grown[: len(column)] = column
            self.numeric[name] = grown
        for column in self.text.values():
            grown = np.full(size, -1, dtype=column.codes.dtype)
            grown[: len(column.codes)] = column.codes
            column.codes = grown
        exists = np.zeros(size, dtype=bool)
        exists[: len(self.exists)] = self.exists
        self.exists = exists

    def _build(self) -> None:
        fields = self.fields
        with _reading_transaction() as cursor:
            cursor.execute(_BUILD_HEAD)
            snap, at, max_id, blob = cursor.fetchone()
            if max_id >= 2**32:
                raise OverflowError("contact ids beyond 2**32 need BitMap64")
            contacts = _decode(blob)
            del blob
            tags = {}
            with cursor.connection.cursor(name="tagwerk_index_tags", binary=True) as named:
                named.itersize = 1  # one tag's bytes at a time
                named.execute(_BUILD_TAGS)
                # Only existing contacts: assignments have no foreign key (tagging 0002).
                for tag_id, blob in named:
                    tags[tag_id] = _decode(blob) & contacts
                    del blob
            self.contacts, self.tags = contacts, tags
            self.numeric, self.text, self.exists = {}, {}, np.zeros(0, dtype=bool)
            if fields:
                self._columns_read(cursor, max_id)
        self.snapshot, self.taken_at, self.synced_at = snap, at, time.monotonic()
        self.save_due = 0.0  # a fresh build is worth sharing now
        _release_freed_memory()

    def _columns_read(self, cursor: psycopg.Cursor, max_id: int) -> None:
        """Every held column, streamed (binary COPY) into arrays indexed by contact id."""
        size = max_id + 1
        numeric = {n: np.full(size, np.iinfo(dtype_of(n)).min, dtype=dtype_of(n))
                   for n in NUMERIC}
        text = {}
        for name in TEXT:
            cursor.execute(_TEXT_VALUES.format(name=name))
            text[name] = TextColumn(size, cursor.fetchone()[0] or ())
        exists = np.zeros(size, dtype=bool)
        fields = 1 + len(NUMERIC) + len(TEXT)

        def apply(rows: np.ndarray) -> None:
            if not np.all(rows["n"] == fields):
                raise RuntimeError("unexpected COPY row layout")
            ids = rows["id"]
            exists[ids] = True
            for name, column in numeric.items():
                values, shift = rows[name], _COPIED[name][2]
                missing = values == np.iinfo(values.dtype).min
                column[ids] = np.where(missing, null_of(column),
                                       values.astype(np.int64) + shift)
            for name, column in text.items():
                column.codes[ids] = rows[name]

        pending, skip = bytearray(), _COPY_HEADER
        with cursor.copy(_columns_copy_sql()) as copy:
            for data in copy:
                pending += data
                if len(pending) - skip >= 4 << 20:  # decode in ~4 MB steps
                    whole = (len(pending) - skip) // _RECORD.itemsize
                    apply(np.frombuffer(pending, dtype=_RECORD, count=whole, offset=skip))
                    del pending[: skip + whole * _RECORD.itemsize]
                    skip = 0
        whole = (len(pending) - skip - 2) // _RECORD.itemsize  # the trailer: int16 -1
        if (len(pending) - skip - 2) % _RECORD.itemsize:
            raise RuntimeError("the COPY stream ended inside a row")
        apply(np.frombuffer(pending, dtype=_RECORD, count=whole, offset=skip))
        self.numeric, self.text, self.exists = numeric, text, exists

    def _columns_load(self) -> None:
        """The held columns, read now (a newer snapshot than the bitmaps')."""
        with _reading_transaction() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM crm_contact")
            self._columns_read(cursor, cursor.fetchone()[0])
        _release_freed_memory()

    # --- The stored snapshot (``snapshot``): shared by every process and machine -----------

    def _load(self, fields: bool) -> bool:
        """Start from the stored snapshot (the fields too when asked for and stored); False
        when there is none, the change log no longer reaches back to it, or it cannot be
        read (each said in a log line)."""
        started = time.monotonic()
        try:
            with snapshot.reading() as stored:
                meta = stored.meta
                if meta is None:
                    log.info("audience index: no stored snapshot; building from scratch")
                    return False
                if meta.get("format") != FORMAT:
                    log.warning("audience index: the stored snapshot has format %s, not %s; "
                                "building from scratch", meta.get("format"), FORMAT)
                    return False
                age = stored.now - meta["taken_at"]
                if age > STALE_AFTER or stored.pruned_past(meta["snapshot"]):
                    log.info("audience index: the stored snapshot (%.0f min old) is older than "
                             "the change log; building from scratch", age / 60)
                    return False
                self._decode_parts(meta, stored.part,
                                   fields and meta.get("columns") == _layout())
        except (snapshot.Corrupt, psycopg.Error, ValueError, KeyError, TypeError,
                IndexError, OverflowError) as exc:
            log.warning("audience index: the stored snapshot is unusable (%s); building from "
                        "scratch", exc)
            self.snapshot = None
            return False
        self.snapshot, self.taken_at = meta["snapshot"], meta["taken_at"]
        # As old as the snapshot, so that STALE_AFTER counts from when it was taken.
        self.synced_at = time.monotonic() - max(age, 0.0)
        self.save_due = time.monotonic() + (SAVE_EVERY or 0) - max(age, 0.0)
        _release_freed_memory()
        log.info("audience index: loaded the stored snapshot (%.0f s old) in %.2f s", age,
                 time.monotonic() - started)
        return True

    def _decode_parts(self, meta: dict, part, fields: bool) -> None:
        contacts = BitMap.deserialize(part("contacts"))
        tags, blob, at = {}, part("tags"), 0
        for tag_id, length in meta["tags"]:
            tags[int(tag_id)] = BitMap.deserialize(blob[at:at + length])
            at += length
        if at != len(blob):
            raise ValueError("the tags part is longer than its table of contents")
        del blob
        numeric, text = {}, {}
        size = meta["size"]
        if fields:
            for name in NUMERIC:
                column = np.frombuffer(part(f"n:{name}"), dtype=dtype_of(name).newbyteorder("<"))
                numeric[name] = column.astype(dtype_of(name))  # a writable copy, native order
                if len(column) != size:
                    raise ValueError(f"column {name} has {len(column)} values, not {size}")
            for name in TEXT:
                values = meta["text"][name]
                column = TextColumn(0, values)
                dtype = np.dtype(meta["codes"][name]).newbyteorder("<")
                column.codes = np.frombuffer(part(f"t:{name}"), dtype=dtype).astype(
                    dtype.newbyteorder("="))
                if len(column.codes) != size:
                    raise ValueError(f"column {name} has {len(column.codes)} values, not {size}")
                text[name] = column
        self.contacts, self.tags, self.fields = contacts, tags, fields
        self.numeric, self.text = numeric, text
        self.exists = np.zeros(size if fields else 0, dtype=bool)
        if fields:
            self.exists[np.frombuffer(contacts.to_array(), dtype=np.uint32)] = True

    def parts(self, meta: dict) -> Iterator[tuple[str, bytes]]:
        """The parts to store, each copied under the lock, and ``meta`` filled in;
        ``snapshot.Abandon`` when the index moved on meanwhile (its parts would disagree)."""
        with self.lock:
            if self.snapshot is None:
                raise snapshot.Abandon
            taken, fields = self.snapshot, self.fields
            meta.update(format=FORMAT, snapshot=taken, taken_at=self.taken_at,
                        size=len(self.exists) if fields else 0, columns=_layout() if fields
                        else None)
            if fields:
                meta["text"] = {n: sorted(c.lookup, key=c.lookup.__getitem__)
                                for n, c in self.text.items()}
                meta["codes"] = {n: c.codes.dtype.str for n, c in self.text.items()}
            contacts = self.contacts.serialize()
        yield "contacts", contacts
        del contacts

        def held(copy):
            with self.lock:
                if self.snapshot != taken:
                    raise snapshot.Abandon
                return copy()

        blobs = held(lambda: [(t, self.tags[t].serialize()) for t in sorted(self.tags)])
        meta["tags"] = [[t, len(b)] for t, b in blobs]
        yield "tags", b"".join(b for _t, b in blobs)
        del blobs
        if fields:
            for name in NUMERIC:
                yield f"n:{name}", held(lambda n=name: _little(self.numeric[n]))
            for name in TEXT:
                yield f"t:{name}", held(lambda n=name: _little(self.text[n].codes))


def _little(column: np.ndarray) -> bytes:
    return column.astype(column.dtype.newbyteorder("<"), copy=False).tobytes()


def _layout() -> dict[str, str]:
    """The held columns and their types: a stored snapshot with others holds no fields."""
    return {**{name: dtype_of(name).name for name in NUMERIC}, **dict.fromkeys(TEXT, "codes")}


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
    every = save_every()
    if every is not None and not _index.saving and time.monotonic() >= _index.save_due:
        _index.save_due, _index.saving = time.monotonic() + every, True
        threading.Thread(target=_save_in_background, name="audience-index-save",
                         daemon=True).start()


def save_every() -> float | None:
    """Seconds between looks at the stored snapshot (``AUDIENCE_INDEX_SAVE_SECONDS``; None:
    this process never saves it)."""
    return getattr(settings, "AUDIENCE_INDEX_SAVE_SECONDS", SAVE_EVERY)


def _save_in_background() -> None:
    try:
        if snapshot_save() is None:  # moved on while copying: try again soon
            _index.save_due = time.monotonic() + 60
    except (psycopg.Error, snapshot.Corrupt) as exc:
        log.warning("audience index: saving the snapshot failed (%s)", exc)
    finally:
        _index.saving = False


def snapshot_save(*, force: bool = False) -> bool | None:
    """Store this process's index for processes that start later (on any machine).

    Only when the stored one is older than half the save interval (another process
    saved it) and would not lose the fields; ``force`` skips that look. Returns
    whether it stored, ``None`` when the index moved on while it was being copied.
    Runs on a connection of its own; counts go on meanwhile (each part is copied
    under the lock, the database write happens outside it).
    """
    if connection.vendor != "postgresql" or _index.snapshot is None:
        return False
    if not force:
        try:
            stored, now = snapshot.stored_meta()
        except snapshot.Corrupt:
            stored, now = None, 0.0
        if stored and stored.get("format") == FORMAT and stored.get("taken_at"):
            age = now - stored["taken_at"]
            if age < (save_every() or SAVE_EVERY) / 2 and stored["taken_at"] >= _index.taken_at:
                return False  # fresh enough: another process saved it
            if stored.get("columns") and not _index.fields and age < STALE_AFTER / 2:
                return False  # holds the fields this process lacks; keep it a while
    meta: dict = {}
    started = time.monotonic()
    saved = snapshot.store(_index.parts(meta), meta)
    if saved:
        log.info("audience index: stored the snapshot in %.2f s", time.monotonic() - started)
    return saved


def built() -> bool:
    """Whether this process holds the index already (a single membership test can then
    use it; building it for one would cost seconds and memory a worker may never use)."""
    return _index.snapshot is not None


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
            # A stored snapshot older than this horizon can no longer catch up (``_load``).
            cursor.execute("UPDATE audiences_tagchangeprune SET deleted_below = "
                           "pg_snapshot_xmin(%s::pg_snapshot) WHERE id = 1", [row[0]])
        # A stored snapshot this old can no longer catch up (STALE_AFTER): nobody loads it,
        # and the contact fields it holds are kept no longer than the change log.
        cursor.execute(f"DELETE FROM audiences_indexsnapshot WHERE saved_at < now() - "
                       f"interval '{KEEP}'")
        if row is None or row[1]:
            cursor.execute(
                "INSERT INTO audiences_tagchangeprune (id, snapshot, at) "
                "VALUES (1, pg_current_snapshot(), now()) "
                "ON CONFLICT (id) DO UPDATE SET snapshot = EXCLUDED.snapshot, at = EXCLUDED.at"
            )
        return deleted
