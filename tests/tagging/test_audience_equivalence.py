"""The fast path (tag-set table on PostgreSQL) selects exactly what the reference does.

Random contacts, random tag changes made through ``tags_change`` (so the
triggers that keep ``tag_ids`` in step are exercised by adds, removals and
single-choice replacements), random expressions; three answers compared: the
fast SQL, the ``EXISTS`` reference SQL and a Python evaluation of the tree.
"""

from __future__ import annotations

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagging.models import TagAssignment
from tagging.segments import contacts_matching, count_matching, parse
from tagging.services import tags_change

pytestmark = pytest.mark.django_db

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


def test_fast_path_equals_reference_on_random_data(vocabulary, make_contact):
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
        reference = set(contacts_matching(expression, fast=False).values_list("pk", flat=True))
        assert reference == expected, expression
        assert count_matching(expression, fast=False) == len(expected), expression
        if fast_available:
            fast = set(contacts_matching(expression, fast=True).values_list("pk", flat=True))
            assert fast == expected, expression
            assert count_matching(expression, fast=True) == len(expected), expression

    check()


def test_tag_ids_follow_every_kind_of_write(vocabulary, make_contact):
    """Inserts, deletes, a moved assignment and a cascading contact delete keep the array true."""
    if connection.vendor != "postgresql":
        pytest.skip("tag_ids exists only on PostgreSQL; SQLite uses the EXISTS reference")
    first, second = make_contact(), make_contact()
    tags_change(contacts=[first, second], add=[vocabulary["A"], vocabulary["D"]])
    tags_change(contacts=[first], add=[vocabulary["E"]])  # replaces D (single choice)
    TagAssignment.objects.filter(contact=second, tag=vocabulary["A"]).update(
        tag=vocabulary["B"])  # e.g. a tag merge moving assignments

    def tag_ids(contact) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tag_ids FROM tagging_contacttagset WHERE contact_id = %s",
                           [contact.pk])
            row = cursor.fetchone()
            return row[0] if row else []

    assert tag_ids(first) == sorted([vocabulary["A"].pk, vocabulary["E"].pk])
    assert tag_ids(second) == sorted([vocabulary["B"].pk, vocabulary["D"].pk])
    assert set(contacts_matching('"B" AND "Stufe/*"', fast=True)) == {second}
    second.delete()
    assert set(contacts_matching('"Stufe/*"', fast=True)) == {first}
    assert tag_ids(second) == []  # no row left behind for a deleted contact
    tags_change(contacts=[first], remove=[vocabulary["A"], vocabulary["E"]])
    assert tag_ids(first) == []


def test_fast_path_stays_on_the_right_table_inside_subqueries(vocabulary, make_contact):
    """The array test must follow Django's alias relabelling (U0, U1 …) into subqueries."""
    holder, other = make_contact(), make_contact()
    tags_change(contacts=[holder], add=[vocabulary["A"]])
    tags_change(contacts=[holder, other], add=[vocabulary["B"]])
    inner = contacts_matching('"A"')
    via_subquery = TagAssignment.objects.filter(contact__in=inner, tag=vocabulary["B"])
    assert [a.contact_id for a in via_subquery] == [holder.pk]
    from django.db.models import Exists, OuterRef

    from crm.models import Contact

    flagged = Contact.objects.filter(Exists(inner.filter(pk=OuterRef("pk"))))
    assert list(flagged) == [holder]


def test_truncating_assignments_empties_the_tag_sets(vocabulary, make_contact):
    """Django's test flush and the benchmark builder TRUNCATE; no DELETE trigger fires then."""
    if connection.vendor != "postgresql":
        pytest.skip("the tag-set table exists only on PostgreSQL")
    tags_change(contacts=[make_contact()], add=[vocabulary["A"]])
    assert count_matching('"A"', fast=True) == 1
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # run the deferred FK checks first
        cursor.execute("TRUNCATE tagging_tagassignment")
    assert count_matching('"A"', fast=True) == 0
