from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Contact
from tagging.demo.contacts import seed_demo
from tagging.demo.history import demo_history_spread
from tagging.models import AssignmentHistory, Dimension, Tag, TagAssignment
from tagging.services import tags_change

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent_and_deterministic():
    first = seed_demo(contacts=300, seed=7)
    snapshot = (
        set(Contact.objects.values_list("phone", "purchase_count")),
        set(TagAssignment.objects.values_list("contact__phone", "tag__name")),
    )
    second = seed_demo(contacts=300, seed=7)

    assert (first.contacts_created, second.contacts_created) == (300, 0)
    assert second.tags_added == 0
    assert snapshot == (
        set(Contact.objects.values_list("phone", "purchase_count")),
        set(TagAssignment.objects.values_list("contact__phone", "tag__name")),
    )
    assert AssignmentHistory.objects.count() == TagAssignment.objects.count()


def test_seed_demo_builds_the_source_vocabulary_with_plausible_shares():
    seed_demo(contacts=2000, seed=1)
    assert Dimension.objects.count() >= 5
    assert 20 <= Tag.objects.count() <= 40
    makeup = TagAssignment.objects.filter(tag__name="Interesse-Make-up").count()
    assert 400 <= makeup <= 600  # ~25% (PRODUCT.md §4: ~2,500 of 10,000)
    for dimension in Dimension.objects.filter(single_choice=True):
        per_contact = (TagAssignment.objects.filter(tag__dimension=dimension)
                       .values("contact").distinct().count())
        assert per_contact == TagAssignment.objects.filter(tag__dimension=dimension).count()


def test_history_spread_gives_the_demo_a_past_and_leaves_other_rows_alone(make_tag):
    seed_demo(contacts=200, seed=3)
    manual = tags_change(contacts=list(Contact.objects.all()[:5]), add=[make_tag()])
    manual_rows = AssignmentHistory.objects.filter(operation=manual.operation)
    before = set(manual_rows.values_list("pk", "at"))

    moved = demo_history_spread(weeks=2, seed=3)

    now = timezone.now()
    demo = AssignmentHistory.objects.filter(source_ref="demo")
    assert moved == demo.count() > 0
    for at, created in demo.values_list("at", "contact__created_at"):
        assert max(created, now - timedelta(days=14)) <= at <= now
    assert len({at.date() for at in demo.values_list("at", flat=True)}) > 7
    for assignment in TagAssignment.objects.filter(source_ref="demo")[:50]:
        latest = demo.filter(contact_id=assignment.contact_id, tag_id=assignment.tag_id)
        assert assignment.assigned_at == latest.latest("at").at
    assert set(manual_rows.values_list("pk", "at")) == before
