"""The tag bitmaps (PostgreSQL) count exactly what the reference SQL selects.

Random contacts, random tag changes made through ``tags_change`` (so the
change-log triggers behind the bitmaps see adds, removals and single-choice
replacements), random expressions; four answers compared: the bitmap count,
the bitmap ids, the ``EXISTS`` reference SQL and a Python evaluation of the
tree. The tests commit (``transactional_db``): bitmaps answer only for
committed data, and inside a test transaction the code rightly falls back to SQL.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Contact
from tagging.audiences import index as bitmaps
from tagging.audiences.language import parse
from tagging.audiences.selectors import (
    contact_matches,
    contacts_matching,
    count_matching,
    ids_matching,
)
from tagging.models import TagAssignment
from tagging.services import tags_change
from tests.conftest import needs_postgresql

pytestmark = pytest.mark.django_db(transaction=True)


TAGS = ["A", "B", "C", "D", "E"]  # D and E form a single-choice dimension "Stufe"


FIELD_TESTS = [  # held as columns by the index …
    "purchases > 1", "purchases = 0", "purchases <= 2", "purchases != 1",
    "last_interaction within 30d", 'last_interaction > "2026-06-01"', "created within 1d",
    'gender = "f"', 'gender != "m"', 'country = "DE"', 'country != "AT"',
    "age >= 30", "age < 25", "age != 40", 'consent = "opted_in"', 'blocked = "true"',
    "joined within 30d", 'joined < "2026-01-01"',
    # … and not: these run in SQL beside the index
    "total_spent > 10",
]


def expressions(depth: int = 3):
    leaf = st.one_of(
        st.sampled_from([f'"{t}"' for t in TAGS]),
        st.just('"Stufe/*"'),
        st.sampled_from(FIELD_TESTS),
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


def evaluate(node, held: set[str], contact, now) -> bool:
    """The meaning of a tree in plain Python: what the SQL and the index must agree with."""
    from tagging.audiences.language import FIELDS, BoolOp, Not, TagRef, Within

    if isinstance(node, BoolOp):
        values = [evaluate(i, held, contact, now) for i in node.items]
        return all(values) if node.op == "and" else any(values)
    if isinstance(node, Not):
        return not evaluate(node.item, held, contact, now)
    if isinstance(node, TagRef):
        if node.dimension_id is not None:
            return bool(held & {"D", "E"})
        return node.text in held
    spec = FIELDS[node.field]
    if isinstance(node, Within):
        value = getattr(contact, spec.column)
        return value is not None and value >= now - node.delta
    if node.field == "age":
        if contact.birth_date is None:
            return False
        born, today = contact.birth_date, now.date()
        actual = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        target = int(node.value)
    elif node.field == "blocked":
        actual, target = contact.is_blocked, node.value == "true"
    else:
        actual, target = getattr(contact, spec.column), node.value
        if isinstance(target, date) and not isinstance(target, datetime):
            target = timezone.make_aware(datetime.combine(target, datetime.min.time()))
    if node.op == "!=":
        return actual is None or actual != target
    if actual is None:
        return False
    return {"=": actual == target, ">": actual > target, ">=": actual >= target,
            "<": actual < target, "<=": actual <= target}[node.op]


FACTS = st.fixed_dictionaries({
    "purchase_count": st.integers(0, 3),
    "total_spent": st.sampled_from([Decimal("0"), Decimal("9.99"), Decimal("10.00"),
                                    Decimal("250")]),
    "gender": st.sampled_from(["f", "m", "d", ""]),
    "country": st.sampled_from(["DE", "AT", "CN"]),
    "consent_status": st.sampled_from(["opted_in", "opted_out", "unknown"]),
    "is_blocked": st.booleans(),
    "interaction_days_ago": st.one_of(st.none(), st.integers(0, 400)),
    "birth_years_ago": st.one_of(st.none(), st.integers(18, 60)),
    "joined_days_ago": st.integers(0, 2000),
})


@pytest.fixture
def vocabulary(make_dimension, make_tag):
    plain = make_dimension(name="Plain")
    stage = make_dimension(name="Stufe", single_choice=True)
    return {name: make_tag(name=name, dimension=stage if name in "DE" else plain)
            for name in TAGS}


def test_index_equals_reference_on_random_data(vocabulary, make_contact):
    contacts = [make_contact(purchase_count=i % 4) for i in range(12)]
    fast_available = connection.vendor == "postgresql"

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(
        changes=st.lists(
            st.tuples(st.sets(st.integers(0, 11), max_size=12),
                      st.sampled_from(TAGS), st.booleans()),
            min_size=1, max_size=8),
        facts=st.lists(st.tuples(st.integers(0, 11), FACTS), max_size=4),
        expression=expressions(),
    )
    def check(changes, facts, expression):
        now = timezone.now()
        for picked, tag, add in changes:
            chosen = [contacts[i] for i in sorted(picked)]
            if add:
                tags_change(contacts=chosen, add=[vocabulary[tag]])
            else:
                tags_change(contacts=chosen, remove=[vocabulary[tag]])
        for i, fact in facts:  # field changes reach the index through the UPDATE trigger
            fact = dict(fact)
            days, years = fact.pop("interaction_days_ago"), fact.pop("birth_years_ago")
            fact["joined_at"] = now - timedelta(days=fact.pop("joined_days_ago"))
            fact["last_interaction_at"] = None if days is None else now - timedelta(days=days)
            fact["birth_date"] = None if years is None else \
                (now - timedelta(days=365 * years + 40)).date()
            Contact.objects.filter(pk=contacts[i].pk).update(**fact)
        rows = {c.pk: c for c in Contact.objects.all()}
        held: dict[int, set[str]] = {pk: set() for pk in rows}
        for contact_id, name in TagAssignment.objects.values_list("contact_id", "tag__name"):
            held[contact_id].add(name)
        node = parse(expression)
        expected = {pk for pk, c in rows.items() if evaluate(node, held[pk], c, now)}
        reference = set(contacts_matching(expression, now=now).values_list("pk", flat=True))
        assert reference == expected, expression
        assert count_matching(expression, now=now, fast=False) == len(expected), expression
        assert set(ids_matching(expression, now=now)) == expected, expression
        assert count_matching(expression, now=now) == len(expected), expression
        # One contact at a time (offers' eligibility): membership tests on the same index.
        assert {pk for pk in rows if contact_matches(expression, pk, now)} == expected, expression
        if fast_available:
            assert bitmaps.usable()  # committed data: the index really answered

    check()


def test_bitmaps_follow_every_kind_of_write(vocabulary, make_contact):
    """Adds, replacements, a moved assignment, new and deleted contacts, a TRUNCATE."""
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
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
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
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
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
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
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
    tags_change(contacts=[make_contact()], add=[vocabulary["A"]])

    def rows(where: str = "true") -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM audiences_tagchange ch, audiences_tagchangeprune p "
                f"WHERE {where}")
            return cursor.fetchone()[0]

    assert bitmaps.changes_prune() == 0  # the first run only records where it stands
    below, above = "ch.xid < pg_snapshot_xmin(p.snapshot)", "ch.xid >= pg_snapshot_xmin(p.snapshot)"
    kept = rows(above)
    assert rows() > 0
    with connection.cursor() as cursor:  # an hour passes …
        cursor.execute("UPDATE audiences_tagchangeprune SET at = at - interval '61 minutes'")
    bitmaps.current().synced_at -= 61 * 60  # … for this process too
    old = rows(below)
    assert bitmaps.changes_prune() == old
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audiences_tagchange")
        assert cursor.fetchone()[0] == kept  # nothing at or above the old horizon was dropped
    assert count_matching('"A"') == 1  # too long since the last catch-up: rebuilt


def test_deleting_a_contact_outside_django_takes_its_tags(vocabulary, make_contact):
    """No foreign key on assignment → contact: a trigger cascades raw deletes."""
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
    kept, gone = make_contact(), make_contact()
    tags_change(contacts=[kept, gone], add=[vocabulary["A"], vocabulary["B"]])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM crm_contact WHERE id = %s", [gone.pk])
    assert set(TagAssignment.objects.values_list("contact_id", flat=True)) == {kept.pk}
    assert count_matching('"A"') == 1


def test_prune_sweeps_tags_added_while_their_contact_was_deleted(vocabulary, make_contact):
    """The race a foreign key would have refused: the hourly prune removes the leftover."""
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
    contact = make_contact()
    tags_change(contacts=[contact], add=[vocabulary["A"]])
    with connection.cursor() as cursor:  # the writer's row lands after the delete cascaded
        cursor.execute("ALTER TABLE crm_contact DISABLE TRIGGER tagwerk_contacts_cascade")
        try:
            cursor.execute("DELETE FROM crm_contact WHERE id = %s", [contact.pk])
        finally:
            cursor.execute("ALTER TABLE crm_contact ENABLE TRIGGER tagwerk_contacts_cascade")
    assert TagAssignment.objects.filter(contact_id=contact.pk).count() == 1
    assert count_matching('"A"') == 0  # never counted: the contact is gone
    TagAssignment.objects.create(contact_id=contact.pk, tag=vocabulary["B"])  # after that
    assert count_matching('"B"') == 0
    bitmaps.changes_prune()  # records where it stands (once an hour)
    for _ in range(2):  # an hour passes: the horizon moves past the deletion
        with connection.cursor() as cursor:
            cursor.execute("UPDATE audiences_tagchangeprune SET at = at - interval '61 minutes'")
        bitmaps.changes_prune()
    assert not TagAssignment.objects.filter(contact_id=contact.pk).exists()


def test_deleting_a_tag_outside_django_takes_its_assignments(vocabulary, make_contact):
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
    contact = make_contact()
    tags_change(contacts=[contact], add=[vocabulary["A"], vocabulary["B"]])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM tagging_tag WHERE id = %s", [vocabulary["B"].pk])
    assert list(TagAssignment.objects.values_list("tag_id", flat=True)) == [vocabulary["A"].pk]


def test_contacts_list_pages_through_the_index(vocabulary, make_contact, admin_client,
                                               monkeypatch):
    """With only the expression box, the list counts and pages from the index, newest first."""
    needs_postgresql("the tag bitmaps exist only on PostgreSQL; SQLite uses the EXISTS reference")
    from crm.admin import ContactAdmin

    monkeypatch.setattr(ContactAdmin, "list_per_page", 2)
    contacts = [make_contact() for _ in range(6)]
    tags_change(contacts=contacts[:5], add=[vocabulary["A"]])
    tags_change(contacts=[contacts[1]], add=[vocabulary["B"]])
    expected = [c.pk for c in reversed(contacts[:5]) if c.pk != contacts[1].pk]  # 4, 3, 2, 0
    pages = []
    for page in (1, 2):
        response = admin_client.get("/admin/crm/contact/",
                                    {"expr": '"A" AND NOT "B"', "p": page})
        assert response.status_code == 200
        cl = response.context["cl"]
        assert cl.result_count == 4
        assert cl.paginator.matches is not None  # the index answered, not SQL
        pages.append([c.pk for c in cl.result_list])
    assert pages == [expected[:2], expected[2:]]
