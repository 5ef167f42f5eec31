"""Per-tag roaring bitmaps in each process: tag expressions counted in milliseconds.

Every process keeps, for each tag, the set of contacts holding it as a
compressed bitmap (``pyroaring``), plus the set of all contacts. ``"A" AND NOT
("B" OR "C")`` is then two bitmap operations over a million contacts instead of
semi-joins over ten million assignment rows.

How the bitmaps stay exactly right. Statement-level triggers on
``tagging_tagassignment`` and ``crm_contact`` append one row per statement to
``tagging_tagchange``: the (contact, tag) pairs the statement touched (tag 0
stands for the contact itself) and the writing transaction's id. A reader
remembers the PostgreSQL snapshot its bitmaps reflect. To catch up it runs one
statement that takes a new snapshot, reads the change rows of transactions the
old snapshot did not see, and re-reads the *current* truth of each touched pair
in that same snapshot, so commit order never matters. Nothing is locked and
writers pay one narrow INSERT per statement, which is why this replaced the
trigger-maintained array table (the array rewrites were ~60% of a bulk change).

A transaction that has written and not committed sees its own changes; the
shared bitmaps must not, so ``usable()`` refuses while the connection holds
uncommitted writes and callers fall back to SQL (``EXISTS``), which is also the
reference implementation and the only path on SQLite.

Change rows older than an hour are pruned (``changes_prune``, hourly beat);
a process that has not caught up for 45 minutes rebuilds from scratch.
"""

from __future__ import annotations

import sys
import threading
import time
from array import array
from collections.abc import Iterable

from django.db import connection
from pyroaring import BitMap

CONTACT = 0  # the tag id that stands for "this contact exists"
STALE_AFTER = 45 * 60  # seconds without a catch-up before a full rebuild
KEEP = "1 hour"  # change rows younger than this (and a snapshot that old) are kept
EMPTY = BitMap()

INSTALL_SQL = """
CREATE TABLE IF NOT EXISTS tagging_tagchange (
    id bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    contact_ids bigint[],          -- NULL: everything changed (TRUNCATE), rebuild
    tag_ids bigint[]
);
CREATE INDEX IF NOT EXISTS tagging_tagchange_xid ON tagging_tagchange (xid);
CREATE TABLE IF NOT EXISTS tagging_tagchangeprune (
    id int PRIMARY KEY,
    snapshot pg_snapshot NOT NULL,
    at timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION tagwerk_assignments_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(contact_id), array_agg(tag_id)
          FROM (SELECT contact_id, tag_id FROM tagwerk_old UNION
                SELECT contact_id, tag_id FROM tagwerk_new) pairs HAVING count(*) > 0;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(contact_id), array_agg(tag_id) FROM tagwerk_new HAVING count(*) > 0;
    ELSE
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(contact_id), array_agg(tag_id) FROM tagwerk_old HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tagwerk_contacts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(id), array_fill(0::bigint, ARRAY[count(*)::int]) FROM tagwerk_new
        HAVING count(*) > 0;
    ELSE
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(id), array_fill(0::bigint, ARRAY[count(*)::int]) FROM tagwerk_old
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;

-- TRUNCATE fires no row-level events (Django's test flush uses it): rebuild.
CREATE OR REPLACE FUNCTION tagwerk_tags_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tagging_tagchange (contact_ids, tag_ids) VALUES (NULL, NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER tagwerk_changes_ins AFTER INSERT ON tagging_tagassignment
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_assignments_changed();
CREATE TRIGGER tagwerk_changes_del AFTER DELETE ON tagging_tagassignment
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_assignments_changed();
CREATE TRIGGER tagwerk_changes_upd AFTER UPDATE ON tagging_tagassignment
    REFERENCING OLD TABLE AS tagwerk_old NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_assignments_changed();
CREATE TRIGGER tagwerk_changes_trunc AFTER TRUNCATE ON tagging_tagassignment
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tags_truncated();
CREATE TRIGGER tagwerk_contacts_ins AFTER INSERT ON crm_contact
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_changed();
CREATE TRIGGER tagwerk_contacts_del AFTER DELETE ON crm_contact
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_changed();
CREATE TRIGGER tagwerk_contacts_trunc AFTER TRUNCATE ON crm_contact
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tags_truncated();
"""

UNINSTALL_SQL = """
DROP TRIGGER IF EXISTS tagwerk_changes_ins ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_changes_del ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_changes_upd ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_changes_trunc ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_contacts_ins ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_del ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_trunc ON crm_contact;
DROP FUNCTION IF EXISTS tagwerk_assignments_changed();
DROP FUNCTION IF EXISTS tagwerk_contacts_changed();
DROP FUNCTION IF EXISTS tagwerk_tags_truncated();
DROP TABLE IF EXISTS tagging_tagchange;
DROP TABLE IF EXISTS tagging_tagchangeprune;
"""

# One statement, one snapshot: the truth of every pair touched since ``prev``.
_CATCH_UP = """
WITH s AS (SELECT pg_current_snapshot() AS snap),
changes AS (
    SELECT ch.contact_ids, ch.tag_ids FROM tagging_tagchange ch
     WHERE ch.xid >= pg_snapshot_xmin(%(prev)s::pg_snapshot)
       AND NOT pg_visible_in_snapshot(ch.xid, %(prev)s::pg_snapshot)),
pairs AS (
    SELECT DISTINCT u.contact_id, u.tag_id
      FROM changes, unnest(changes.contact_ids, changes.tag_ids) AS u(contact_id, tag_id))
SELECT s.snap::text, (SELECT count(*) FROM changes WHERE contact_ids IS NULL),
       p.contact_id, p.tag_id,
       CASE WHEN p.tag_id = 0
            THEN EXISTS (SELECT 1 FROM crm_contact c WHERE c.id = p.contact_id)
            ELSE EXISTS (SELECT 1 FROM tagging_tagassignment a
                          WHERE a.contact_id = p.contact_id AND a.tag_id = p.tag_id) END
  FROM s LEFT JOIN pairs p ON true
"""

# One statement, one snapshot: every tag's contacts as 4-byte big-endian ids.
_BUILD = """
WITH s AS (SELECT pg_current_snapshot()::text AS snap)
SELECT (SELECT snap FROM s), -1::bigint, int8send(coalesce(max(id), 0)) FROM crm_contact
UNION ALL
SELECT (SELECT snap FROM s), 0, string_agg(substring(int8send(id) from 5), ''::bytea)
  FROM crm_contact
UNION ALL
SELECT (SELECT snap FROM s), tag_id, string_agg(substring(int8send(contact_id) from 5), ''::bytea)
  FROM tagging_tagassignment GROUP BY tag_id
"""


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

    def tag(self, tag_id: int) -> BitMap:
        return self.tags.get(tag_id, EMPTY)

    def any_of(self, tag_ids: Iterable[int]) -> BitMap:
        return BitMap.union(EMPTY, *(self.tag(t) for t in tag_ids))

    def refresh(self) -> None:
        """Catch up with every committed change (or rebuild when too far behind)."""
        if self.snapshot is None or time.monotonic() - self.synced_at > STALE_AFTER:
            self._build()
            return
        with connection.cursor() as cursor:
            cursor.execute(_CATCH_UP, {"prev": self.snapshot})
            rows = cursor.fetchall()
        if rows[0][1]:  # a TRUNCATE happened
            self._build()
            return
        for _snap, _reset, contact_id, tag_id, holds in rows:
            if contact_id is None:
                continue
            target = self.contacts if tag_id == CONTACT else self.tags.setdefault(tag_id, BitMap())
            (target.add if holds else target.discard)(contact_id)
        self.snapshot, self.synced_at = rows[0][0], time.monotonic()

    def _build(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(_BUILD)
            rows = cursor.fetchall()
        if int.from_bytes(rows[0][2], "big") >= 2**32:
            raise OverflowError("contact ids beyond 2**32 need BitMap64")
        self.contacts = _decode(rows[1][2])
        self.tags = {tag_id: _decode(blob) for _s, tag_id, blob in rows[2:]}
        self.snapshot, self.synced_at = rows[0][0], time.monotonic()


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


def current() -> TagBitmaps:
    """This process's bitmaps, brought up to date (caller checked ``usable()``)."""
    with _index.lock:
        _index.refresh()
        return _index


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
            f"SELECT snapshot::text, at < now() - interval '{KEEP}' FROM tagging_tagchangeprune "
            "WHERE id = 1"
        )
        row = cursor.fetchone()
        deleted = 0
        if row and row[1]:
            cursor.execute(
                "DELETE FROM tagging_tagchange WHERE xid < pg_snapshot_xmin(%s::pg_snapshot)",
                [row[0]],
            )
            deleted = cursor.rowcount
        if row is None or row[1]:
            cursor.execute(
                "INSERT INTO tagging_tagchangeprune (id, snapshot, at) "
                "VALUES (1, pg_current_snapshot(), now()) "
                "ON CONFLICT (id) DO UPDATE SET snapshot = EXCLUDED.snapshot, at = EXCLUDED.at"
            )
        return deleted
