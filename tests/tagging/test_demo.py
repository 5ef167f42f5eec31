import pytest

from crm.models import Contact
from tagging.demo.contacts import seed_demo
from tagging.models import AssignmentHistory, Dimension, Tag, TagAssignment

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
