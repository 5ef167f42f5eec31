"""Where the audience index's snapshot is kept: one table in PostgreSQL.

A process that holds the index writes what it holds (``index.snapshot_save``)
as named parts, each with its checksum, plus a ``meta`` part that says which
PostgreSQL snapshot they reflect and when it was taken. A new process reads the
parts back in one repeatable-read transaction (so a save running at the same
time is never seen half done) and catches up from the change log.

Why a table and not a file per machine: every machine and every new container
finds the same snapshot, one process's save serves all of them, and the age
check uses the database's own clock, the clock the change log is pruned by. A
local file would be empty in each new container (a deploy), be written once per
machine, and compare machine clocks with the database's.

This module only stores and fetches bytes; ``index`` encodes and decodes them.
Both use their own short connection, so a save or a load never runs inside a
request's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection

META = "meta"
LOCK = 0x7461_6777  # advisory lock key: one saver at a time across the processes


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Corrupt(ValueError):
    """A stored part does not match its checksum, or the meta cannot be read."""


@contextmanager
def connect() -> Iterator[psycopg.Connection]:
    """A connection of its own to Django's database (same parameters)."""
    params = connection.get_connection_params()
    keep = {k: v for k, v in params.items()
            if k not in ("cursor_factory", "context", "prepare_threshold", "server_side_binding")}
    with psycopg.connect(**keep, autocommit=False) as conn:
        yield conn


def store(parts: Iterable[tuple[str, bytes]], meta: dict) -> bool | None:
    """Replace the stored snapshot with ``parts`` and ``meta`` (which gets the checksums,
    after the parts, so the parts may fill it in); ``False`` when another process is saving
    right now, ``None`` when ``parts`` raised ``Abandon`` (nothing written either way)."""
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK])
        if not cursor.fetchone()[0]:
            return False
        try:
            cursor.execute("DELETE FROM audiences_indexsnapshot")
            sums = {}
            for name, data in parts:
                sums[name] = digest(data)
                cursor.execute("INSERT INTO audiences_indexsnapshot (part, data) VALUES (%s, %s)",
                               [name, data], binary=True)
        except Abandon:
            conn.rollback()
            return None
        cursor.execute("INSERT INTO audiences_indexsnapshot (part, data) VALUES (%s, %s)",
                       [META, json.dumps({**meta, "sums": sums}).encode()])
        conn.commit()
        return True


class Abandon(Exception):
    """Raised by a part generator: the index moved on while it was being written."""


def stored_meta() -> tuple[dict | None, float]:
    """The stored meta (``None``: no snapshot) and the database's clock (epoch seconds)."""
    with connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT (SELECT data FROM audiences_indexsnapshot WHERE part = %s),"
                       " extract(epoch from clock_timestamp())::float8", [META])
        data, now = cursor.fetchone()
    return (None if data is None else _meta(data)), now


class Stored:
    """The stored snapshot as one repeatable-read transaction sees it."""

    def __init__(self, cursor: psycopg.Cursor):
        self.cursor = cursor
        cursor.execute("SELECT (SELECT data FROM audiences_indexsnapshot WHERE part = %s),"
                       " extract(epoch from clock_timestamp())::float8", [META])
        data, self.now = cursor.fetchone()
        self.meta = None if data is None else _meta(data)

    def part(self, name: str) -> bytes:
        """One part, checked against its checksum (``Corrupt`` otherwise)."""
        self.cursor.execute("SELECT data FROM audiences_indexsnapshot WHERE part = %s", [name])
        row = self.cursor.fetchone()
        if row is None or digest(row[0]) != self.meta["sums"].get(name):
            raise Corrupt(f"part {name!r} is missing or does not match its checksum")
        return row[0]

    def pruned_past(self, snap: str) -> bool:
        """Whether the change log lost rows that ``snap`` did not see (``changes_prune``
        deleted below its horizon): a catch-up from it would miss changes."""
        self.cursor.execute(
            "SELECT coalesce(bool_or(deleted_below > pg_snapshot_xmin(%s::text::pg_snapshot)),"
            " false) FROM audiences_tagchangeprune", [snap])
        return self.cursor.fetchone()[0]


@contextmanager
def reading() -> Iterator[Stored]:
    """The stored snapshot, its parts read in one repeatable-read transaction."""
    with connect() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.cursor(binary=True) as cursor:
            yield Stored(cursor)
        conn.rollback()


def _meta(data: bytes) -> dict:
    try:
        meta = json.loads(bytes(data))
    except ValueError as exc:
        raise Corrupt(f"the meta part cannot be read: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("sums"), dict):
        raise Corrupt("the meta part has no checksums")
    return meta
