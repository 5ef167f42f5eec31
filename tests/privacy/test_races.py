"""Erasures of one contact racing each other (PostgreSQL: concurrent writers)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from crm.models import Contact, Erasure
from crm.privacy import ErasureError, contact_erase
from tests.conftest import needs_postgresql
from tests.factories import ContactFactory


@pytest.mark.django_db(transaction=True)
def test_three_erasures_of_one_contact_at_once_erase_it_once():
    needs_postgresql("the race needs PostgreSQL's row locks and concurrent writers")
    for round_ in range(5):
        contact = ContactFactory(first_name="Zorbalina", last_name=f"Race{round_}")
        start, outcomes = threading.Barrier(3), []

        def erase(contact=contact, start=start, outcomes=outcomes):
            stale = Contact.objects.get(pk=contact.pk)  # each read it before the others wrote
            start.wait()
            try:
                contact_erase(contact=stale, via="admin")
                outcomes.append("erased")
            except ErasureError:
                outcomes.append("refused")
            finally:
                connection.close()

        threads = [threading.Thread(target=erase) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["erased", "refused", "refused"]
    assert Erasure.objects.count() == 5
