from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from crm.events import EventIn, events_record
from crm.models import Contact, Event, EventKind

pytestmark = pytest.mark.django_db


def test_purchases_update_counts_money_and_dates(make_contact):
    contact = make_contact(purchase_count=2, total_spent=Decimal("50.00"))
    now = timezone.now()
    result = events_record(events=[
        EventIn(kind=EventKind.PURCHASE, contact_id=contact.pk, amount=Decimal("19.90"),
                occurred_at=now - timedelta(days=3), source_id="o-1"),
        EventIn(kind=EventKind.PURCHASE, contact_id=contact.pk, amount=Decimal("10.10"),
                occurred_at=now - timedelta(days=1), source_id="o-2"),
        EventIn(kind=EventKind.MESSAGE_READ, contact_id=contact.pk, occurred_at=now),
    ], source="api")

    contact.refresh_from_db()
    assert result.counts == {"stored": 3, "duplicates": 0, "failed": 0, "contacts_created": 0}
    assert (contact.purchase_count, contact.total_spent) == (4, Decimal("80.00"))
    assert contact.first_purchase_at == now - timedelta(days=3)
    assert contact.last_purchase_at == contact.last_interaction_at == now - timedelta(days=1)
    assert contact.last_read_at == now and contact.last_reply_at is None


def test_replaying_a_batch_changes_nothing(make_contact):
    contact = make_contact()
    batch = [EventIn(kind=EventKind.PURCHASE, contact_id=contact.pk, amount=Decimal(5),
                     source_id=f"o-{i}") for i in range(3)]
    events_record(events=batch, source="shop")
    again = events_record(events=batch, source="shop")
    contact.refresh_from_db()
    assert again.counts["duplicates"] == 3 and again.stored == []
    assert (contact.purchase_count, Event.objects.count()) == (3, 3)


def test_unknown_valid_numbers_become_contacts_and_bad_ones_are_reported():
    result = events_record(events=[
        EventIn(kind=EventKind.INTERACTION, phone="+49 170 1234567"),
        EventIn(kind=EventKind.INTERACTION, phone="12"),
        EventIn(kind="teleport", phone="+49 170 1234567"),
    ], source="api")
    assert result.contacts_created == 1
    assert Contact.objects.get().phone == "+491701234567"
    assert set(result.failed) == {1, 2}
    assert result.failed[1].startswith("invalid_phone")


def test_older_events_do_not_move_facts_backwards(make_contact):
    now = timezone.now()
    contact = make_contact(last_interaction_at=now)
    events_record(events=[EventIn(kind=EventKind.INTERACTION, contact_id=contact.pk,
                                  occurred_at=now - timedelta(days=10))])
    contact.refresh_from_db()
    assert contact.last_interaction_at == now
