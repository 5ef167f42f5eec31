"""The tag bitmaps (PostgreSQL) count exactly what the reference SQL selects.

Random contacts, random tag changes made through ``tags_change`` (so the
change-log triggers behind the bitmaps see adds, removals and single-choice
replacements), random expressions; four answers compared: the bitmap count,
the bitmap ids, the ``EXISTS`` reference SQL and a Python evaluation of the
tree. The tests commit (``transactional_db``): bitmaps answer only for
committed data, and inside a test transaction the code rightly falls back to SQL.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagging import bitmaps
from tagging.models import TagAssignment
from tagging.segments import contacts_matching, count_matching, ids_matching, parse
from tagging.services import tags_change

pytestmark = pytest.mark.django_db(transaction=True)


def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")

TAGS = ["A", "B", "C", "D", "E"]  # D and E form a single-choice dimension "Stufe"


def expressions(depth: int = 3):
    leaf = st.one_of(
        st.sampled_from([f'"{t}"' for t in TAGS]),
        st.just('"Stufe/*"'),
        st.sampled_from(["purchases > 1", "purchases = 0", "purchases <= 2"]),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda a: f"NOT {a}", inner),
            st.builds(lambda a, b: f"({a} AND {b})", inner, inner),
            st.builds(lambda a, b: f"({a} OR {b})", inner, inner),
            st.builds(lambda a, b, c: f"{a} AND NOT {b} AND {c}", inner, inner, inner),
        ),
        max_leaves=6,
    )


def evaluate(node, held: set[str], purchases: int, dims: dict[int, str]) -> bool:
    """The meaning of a tree in plain Python: what the SQL must agree with."""
    from tagging.segments import BoolOp, Condition, Not, TagRef

    if isinstance(node, BoolOp):
        values = [evaluate(i, held, purchases, dims) for i in node.items]
        return all(values) if node.op == "and" else any(values)
    if isinstance(node, Not):
        return not evaluate(node.item, held, purchases, dims)
    if isinstance(node, TagRef):
        if node.dimension_id is not None:
            return bool(held & {"D", "E"})
        return node.text in held
    assert isinstance(node, Condition)
    value = int(node.value)
    return {">": purchases > value, "=": purchases == value, "<=": purchases <= value}[node.op]


@pytest.fixture
def vocabulary(make_dimension, make_tag):
    plain = make_dimension(name="Plain")
    stage = make_dimension(name="Stufe", single_choice=True)
    return {name: make_tag(name=name, dimension=stage if name in "DE" else plain)
            for name in TAGS}


def test_bitmaps_equal_reference_on_random_data(vocabulary, make_contact):
    contacts = [make_contact(purchase_count=i % 4) for i in range(12)]
    fast_available = connection.vendor == "postgresql"

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(
        changes=st.lists(
            st.tuples(st.sets(st.integers(0, 11), max_size=12),
                      st.sampled_from(TAGS), st.booleans()),
            min_size=1, max_size=8),
        expression=expressions(),
    )
    def check(changes, expression):
        for picked, tag, add in changes:
            chosen = [contacts[i] for i in sorted(picked)]
            if add:
                tags_change(contacts=chosen, add=[vocabulary[tag]])
            else:
                tags_change(contacts=chosen, remove=[vocabulary[tag]])
        held: dict[int, set[str]] = {c.pk: set() for c in contacts}
        for contact_id, name in TagAssignment.objects.values_list("contact_id", "tag__name"):
            held[contact_id].add(name)
        node = parse(expression)
        expected = {c.pk for c in contacts
                    if evaluate(node, held[c.pk], c.purchase_count, {})}
        reference = set(contacts_matching(expression).values_list("pk", flat=True))
        assert reference == expected, expression
        assert count_matching(expression, fast=False) == len(expected), expression
        assert set(ids_matching(expression)) == expected, expression
        assert count_matching(expression) == len(expected), expression
        if fast_available:
            assert bitmaps.usable()  # committed data: the bitmaps really answered

    check()


def test_bitmaps_follow_every_kind_of_write(vocabulary, make_contact):
    """Adds, replacements, a moved assignment, new and deleted contacts, a TRUNCATE."""
    needs_postgresql()
    first, second = make_contact(), make_contact()
    assert count_matching('NOT "A"') == 2
    tags_change(contacts=[first, second], add=[vocabulary["A"], vocabulary["D"]])
    tags_change(contacts=[first], add=[vocabulary["E"]])  # replaces D (single choice)
    TagAssignment.objects.filter(contact=second, tag=vocabulary["A"]).update(
        tag=vocabulary["B"])  # e.g. a tag merge moving assignments
    index = bitmaps.current()
    assert set(index.tag(vocabulary["A"].pk)) == {first.pk}
    assert set(index.tag(vocabulary["B"].pk)) == {second.pk}
    assert set(index.tag(vocabulary["D"].pk)) == {second.pk}
    assert set(index.tag(vocabulary["E"].pk)) == {first.pk}
    assert ids_matching('"B" AND "Stufe/*"') == [second.pk]
    third = make_contact()
    assert ids_matching('NOT "Stufe/*"') == [third.pk]
    second.delete()  # cascades to its assignments
    assert ids_matching('"Stufe/*"') == [first.pk]
    assert count_matching('NOT "A"') == 1
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE tagging_tagassignment")
    assert count_matching('"A" OR "Stufe/*"') == 0
    assert count_matching('NOT "A"') == 2


def test_uncommitted_writes_are_counted_in_sql_and_never_enter_the_bitmaps(vocabulary,
                                                                             make_contact):
    needs_postgresql()
    contact = make_contact()
    assert count_matching('"A"') == 0
    with pytest.raises(RuntimeError), transaction.atomic():
        tags_change(contacts=[contact], add=[vocabulary["A"]])
        assert not bitmaps.usable()
        assert count_matching('"A"') == 1  # our own change, seen through SQL
        raise RuntimeError("roll back")
    assert bitmaps.usable()
    assert count_matching('"A"') == 0
    assert list(bitmaps.current().tag(vocabulary["A"].pk)) == []


def test_changes_committed_in_any_order_are_all_seen(vocabulary, make_contact):
    """Another connection commits after the bitmaps caught up: the next count sees it."""
    needs_postgresql()
    import threading

    contact = make_contact()
    assert count_matching('"A"') == 0

    def elsewhere():
        from django.db import connections

        try:
            tags_change(contacts=[contact.pk], add=[vocabulary["A"]])
        finally:
            connections.close_all()

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert count_matching('"A"') == 1


def test_prune_keeps_an_hour_of_changes(vocabulary, make_contact):
    """Rows go only below the horizon recorded an hour earlier; counts stay right."""
    needs_postgresql()
    tags_change(contacts=[make_contact()], add=[vocabulary["A"]])

    def rows(where: str = "true") -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM tagging_tagchange ch, tagging_tagchangeprune p "
                f"WHERE {where}")
            return cursor.fetchone()[0]

    assert bitmaps.changes_prune() == 0  # the first run only records where it stands
    below, above = "ch.xid < pg_snapshot_xmin(p.snapshot)", "ch.xid >= pg_snapshot_xmin(p.snapshot)"
    kept = rows(above)
    assert rows() > 0
    with connection.cursor() as cursor:  # an hour passes …
        cursor.execute("UPDATE tagging_tagchangeprune SET at = at - interval '61 minutes'")
    bitmaps.current().synced_at -= 61 * 60  # … for this process too
    old = rows(below)
    assert bitmaps.changes_prune() == old
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tagging_tagchange")
        assert cursor.fetchone()[0] == kept  # nothing at or above the old horizon was dropped
    assert count_matching('"A"') == 1  # too long since the last catch-up: rebuilt
