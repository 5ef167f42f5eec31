"""``Contact.joined_at`` (``joined`` in expressions): the earliest thing known about a
customer, only ever moved earlier."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.events import EventIn, events_record
from crm.models import Contact, EventKind
from crm.services import contacts_insert, contacts_join_earlier
from tagging.audiences.selectors import contacts_matching

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def days(n: float):
    return NOW - timedelta(days=n)


def joined(contact) -> object:
    return Contact.objects.get(pk=contact.pk).joined_at


def test_a_new_contact_joined_when_it_was_created(make_contact):
    ids = contacts_insert(rows=[{"phone": "+4915123000001", "country": "DE",
                                 "created_at": days(3)}])

    assert Contact.objects.get(pk=ids["+4915123000001"]).joined_at == days(3)


def test_an_older_event_moves_joined_back_and_a_newer_one_does_not(make_contact):
    contact = make_contact(created_at=days(2))

    events_record(events=[EventIn(kind=EventKind.PURCHASE, contact_id=contact.pk,
                                  occurred_at=days(400), source_id="o-1")], source="shop")
    assert joined(contact) == days(400)

    events_record(events=[EventIn(kind=EventKind.MESSAGE_READ, contact_id=contact.pk,
                                  occurred_at=days(1), source_id="r-1")], source="shop")
    assert joined(contact) == days(400)


def test_an_inbound_message_older_than_the_contact_moves_joined_back(make_contact):
    from campaigns.webhook_input import MessageIn
    from campaigns.webhooks import messages_apply

    contact = make_contact(phone="+4915123000009", created_at=days(1))

    messages_apply(messages=[MessageIn(
        message_id="wamid.1", wa_id="4915123000009", occurred_at=days(3), kind="text",
        text="Hallo", context_id="", payload={})])

    assert joined(contact) == days(3)


def test_join_earlier_never_moves_joined_later(make_contact):
    early, late = make_contact(created_at=days(100)), make_contact(created_at=days(1))

    contacts_join_earlier(joined=[(early.pk, days(10)), (late.pk, days(50))])

    assert (joined(early), joined(late)) == (days(100), days(50))


def test_joined_within_is_an_expression_field(make_contact):
    newcomer, regular = make_contact(created_at=days(3)), make_contact(created_at=days(3))
    contacts_join_earlier(joined=[(regular.pk, NOW.replace(year=2019))])

    assert set(contacts_matching("joined within 30d", now=NOW)) == {newcomer}
    assert set(contacts_matching('joined < "2020-01-01"', now=NOW)) == {regular}
