"""“Customer since” from an import: ``joined_at`` on new contacts, and only ever earlier on
existing ones; undo puts it back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from crm.models import Contact
from tagging.imports.services import import_undo
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def local(*args) -> datetime:
    return timezone.make_aware(datetime(*args))


@pytest.mark.parametrize("header, value, expected", [
    ("customer since", "2019-04-12", local(2019, 4, 12)),
    ("Kunde seit", "12.04.2019", local(2019, 4, 12)),
    ("注册时间", "2019/04/12 08:30", local(2019, 4, 12, 8, 30)),
    ("date_created", "2019-04-12T08:30:00Z", datetime.fromisoformat("2019-04-12T08:30:00+00:00")),
])
def test_a_customer_since_column_sets_joined(vocabulary, run_import, header, value, expected):
    run_import(f"phone,{header}\n+4915123000001,{value}\n")

    contact = Contact.objects.get()
    assert contact.joined_at == expected
    assert contact.created_at > expected  # created today, a customer for years


def test_existing_contacts_move_only_earlier_and_undo_puts_joined_back(vocabulary, run_import):
    created = timezone.now() - timedelta(days=5)
    ContactFactory(phone="+4915123000001", created_at=created)
    ContactFactory(phone="+4915123000002", created_at=created)

    job = run_import("phone,customer since\n+4915123000001,2018-01-01\n"
                     "+4915123000002,2030-01-01\n")

    joined = dict(Contact.objects.values_list("phone", "joined_at"))
    assert joined == {"+4915123000001": local(2018, 1, 1), "+4915123000002": created}
    assert (job.updated, job.unchanged) == (1, 1)
    import_undo(job=job)
    assert Contact.objects.get(phone="+4915123000001").joined_at == created


def test_an_unreadable_customer_since_fails_the_row(vocabulary, run_import):
    job = run_import("phone,Kunde seit\n+4915123000001,seit langem\n+4915123000002,2020-02-02\n")

    assert (job.created, job.errors) == (1, {"invalid_value": 1})
