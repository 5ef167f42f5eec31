"""A process that starts from the stored snapshot answers exactly what SQL answers.

The snapshot (``audiences_indexsnapshot``) is written by a process holding the index;
a later process loads it and catches up through the change log with every write made
since. A corrupt snapshot, or one older than what the change log still holds, is not
used: the process builds from scratch and says why in a log line. PostgreSQL only, and
committed data (``transactional_db``), as the index itself.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from crm.models import Contact
from tagging.audiences import index as bitmaps
from tagging.audiences.selectors import count_matching, ids_matching
from tagging.services import tags_change
from tests.conftest import needs_postgresql

pytestmark = pytest.mark.django_db(transaction=True)

EXPRESSIONS = [
    '"A"', '"A" AND NOT "B"', 'NOT "A"', '"B" OR purchases > 1',
    '"A" AND NOT last_interaction within 30d', 'country = "AT" AND NOT "B"', 'gender != "m"',
]


@pytest.fixture
def world(make_dimension, make_tag, make_contact):
    needs_postgresql("the index and its stored snapshot exist only on PostgreSQL")
    plain = make_dimension(name="Plain")
    tags = {name: make_tag(name=name, dimension=plain) for name in "ABC"}
    contacts = [make_contact(purchase_count=i % 3, country="DE", gender="f") for i in range(8)]
    tags_change(contacts=contacts[:5], add=[tags["A"]])
    tags_change(contacts=contacts[3:], add=[tags["B"]])
    yield tags, contacts
    with connection.cursor() as cursor:  # not flushed between tests (no model): as it was
        cursor.execute("UPDATE audiences_tagchangeprune SET deleted_below = NULL")


def fresh_process(monkeypatch) -> bitmaps.TagBitmaps:
    """The module's index as a process that has just started has it: empty."""
    index = bitmaps.TagBitmaps()
    monkeypatch.setattr(bitmaps, "_index", index)
    return index


def answers() -> dict[str, tuple[int, list[int]]]:
    return {e: (count_matching(e), ids_matching(e)) for e in EXPRESSIONS}


def sql_answers() -> dict[str, tuple[int, list[int]]]:
    from tagging.audiences.selectors import contacts_matching

    return {e: (count_matching(e, fast=False),
                sorted(contacts_matching(e).values_list("pk", flat=True))) for e in EXPRESSIONS}


def write_since(tags, contacts, make_contact) -> None:
    """Every kind of write a starting process must catch up with."""
    tags_change(contacts=contacts[:2], remove=[tags["A"]])
    tags_change(contacts=contacts[6:], add=[tags["A"], tags["C"]])
    Contact.objects.filter(pk=contacts[0].pk).update(country="AT", purchase_count=5,
                                                     last_interaction_at=timezone.now())
    Contact.objects.filter(pk=contacts[4].pk).update(
        last_interaction_at=timezone.now() - timedelta(days=90))
    contacts[7].delete()
    newcomer = make_contact(country="AT", gender="m")
    tags_change(contacts=[newcomer], add=[tags["A"]])


@pytest.mark.parametrize("fields", [True, False], ids=["with fields", "tags only"])
def test_a_new_process_loads_the_snapshot_and_counts_every_write_since(
        world, make_contact, monkeypatch, fields):
    tags, contacts = world
    holder = fresh_process(monkeypatch)
    holder.refresh(["purchase_count"] if fields else [])
    assert bitmaps.snapshot_save(force=True) is True
    write_since(tags, contacts, make_contact)

    started = fresh_process(monkeypatch)
    assert started.refresh(["purchase_count"]) == "load"  # not a build from scratch
    assert answers() == sql_answers()
    assert bitmaps.usable()


def test_the_snapshot_is_saved_only_when_the_stored_one_is_older_than_half_the_interval(
        world, monkeypatch):
    fresh_process(monkeypatch).refresh()
    assert bitmaps.snapshot_save(force=True) is True
    assert bitmaps.snapshot_save() is False  # another process saved it a moment ago


def test_a_corrupt_snapshot_falls_back_to_a_full_build_with_a_log_line(
        world, make_contact, monkeypatch, caplog):
    tags, contacts = world
    fresh_process(monkeypatch).refresh(["purchase_count"])
    assert bitmaps.snapshot_save(force=True)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audiences_indexsnapshot SET data = '\\x0badc0de'::bytea "
                       "WHERE part = 'tags'")
    write_since(tags, contacts, make_contact)

    started = fresh_process(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="tagging.audiences.index"):
        assert started.refresh(["purchase_count"]) == "build"
    assert "unusable" in caplog.text and "checksum" in caplog.text
    assert answers() == sql_answers()


def test_a_snapshot_the_change_log_no_longer_reaches_is_not_used(
        world, make_contact, monkeypatch, caplog):
    tags, contacts = world
    fresh_process(monkeypatch).refresh()
    assert bitmaps.snapshot_save(force=True)
    write_since(tags, contacts, make_contact)
    with connection.cursor() as cursor:  # the hourly prune deleted rows the snapshot lacks
        cursor.execute(
            "INSERT INTO audiences_tagchangeprune (id, snapshot, at, deleted_below) "
            "VALUES (1, pg_current_snapshot(), now(), pg_current_xact_id()) "
            "ON CONFLICT (id) DO UPDATE SET deleted_below = EXCLUDED.deleted_below")

    started = fresh_process(monkeypatch)
    with caplog.at_level(logging.INFO, logger="tagging.audiences.index"):
        assert started.refresh() == "build"
    assert "older than the change log" in caplog.text
    assert answers() == sql_answers()


def test_a_snapshot_from_another_layout_is_not_used(world, monkeypatch, caplog):
    fresh_process(monkeypatch).refresh()
    assert bitmaps.snapshot_save(force=True)
    monkeypatch.setattr(bitmaps, "FORMAT", bitmaps.FORMAT + 1)  # a newer release reads it

    started = fresh_process(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="tagging.audiences.index"):
        assert started.refresh() == "build"
    assert "format" in caplog.text
    assert answers() == sql_answers()


def test_one_contact_s_membership_never_builds_the_index(world, monkeypatch):
    """A worker checking a journey's audience for one contact answers in SQL and stays
    small; once the process holds the index (it counted), the index answers."""
    from tagging.audiences.selectors import contact_matches

    _tags, contacts = world
    fresh_process(monkeypatch)
    assert [contact_matches('"A" AND NOT "B"', c.pk) for c in contacts] == [True] * 3 + [False] * 5
    assert not bitmaps.built()
    count_matching('"A"')  # a process that counts holds it from then on
    assert bitmaps.built()
    assert [contact_matches('"A" AND NOT "B"', c.pk) for c in contacts] == [True] * 3 + [False] * 5


def test_the_hourly_prune_deletes_a_snapshot_no_process_can_use(world, monkeypatch):
    fresh_process(monkeypatch).refresh()
    assert bitmaps.snapshot_save(force=True)

    def stored() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audiences_indexsnapshot")
            return cursor.fetchone()[0]

    bitmaps.changes_prune()
    assert stored() > 0  # fresh: kept
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audiences_indexsnapshot SET saved_at = now() - interval '61 min'")
    bitmaps.changes_prune()
    assert stored() == 0
