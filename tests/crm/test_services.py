"""The contact writer (``crm.services``) on whichever database the suite runs: SQLite by
default, PostgreSQL with ``DATABASE_URL`` (COPY and ``unnest`` there, ``bulk_*`` here)."""

from datetime import date, timedelta

import pytest
from django.db import IntegrityError
from django.utils import timezone

from crm.models import ConsentStatus, Contact
from crm.services import (
    consent_change_allowed,
    contact_set_consent,
    contacts_delete,
    contacts_ensure,
    contacts_insert,
    contacts_update,
)

IN, OUT, UNKNOWN = ConsentStatus.OPTED_IN, ConsentStatus.OPTED_OUT, ConsentStatus.UNKNOWN


@pytest.mark.parametrize(("current", "new", "blocked", "by_contact", "allowed"), [
    (UNKNOWN, IN, False, False, True),  # an import with an opted-in basis
    (UNKNOWN, IN, True, False, False),  # blocklisted: never opted in
    (UNKNOWN, IN, True, True, False),  # not even when asked
    (OUT, IN, False, False, False),  # an opt-out is not upgraded by an import or undo
    (OUT, IN, False, True, True),  # … only by the person ("resume")
    (IN, IN, False, True, False),  # no change
    (IN, OUT, False, True, True),  # "stop"
    (IN, OUT, True, True, True),  # a blocklisted number may still opt out
    (IN, UNKNOWN, False, False, True),  # undo takes an import's consent back
])
def test_consent_rule(current, new, blocked, by_contact, allowed):
    assert consent_change_allowed(current=current, new=new, is_blocked=blocked,
                                  asked_by_contact=by_contact) is allowed


@pytest.mark.django_db
def test_set_consent_follows_the_rule_and_records_source_and_time(make_contact):
    out, blocked = make_contact(consent_status=OUT), make_contact(consent_status=UNKNOWN,
                                                                   is_blocked=True)

    assert contact_set_consent(contact=out, status=IN, source="whatsapp resume")
    assert not contact_set_consent(contact=blocked, status=IN, source="whatsapp resume")
    assert not contact_set_consent(contact=out, status=IN, source="again")

    out.refresh_from_db()
    blocked.refresh_from_db()
    assert (out.consent_status, out.consent_source) == (IN, "whatsapp resume")
    assert out.consent_at is not None
    assert (blocked.consent_status, blocked.consent_at) == (UNKNOWN, None)


@pytest.mark.django_db
def test_insert_creates_rows_with_defaults_and_returns_their_ids():
    ids = contacts_insert(rows=[
        {"phone": "+4915123000001", "country": "DE", "first_name": "Anna",
         "attributes": {"Kundennr": "7"}, "birth_date": date(1990, 5, 1)},
        {"phone": "+4915123000002", "country": "DE", "first_name": "Ben",
         "attributes": {}, "birth_date": None},
    ])

    contacts = {c.phone: c for c in Contact.objects.all()}
    assert ids == {phone: c.pk for phone, c in contacts.items()}
    anna = contacts["+4915123000001"]
    assert (anna.first_name, anna.attributes, anna.birth_date) == ("Anna", {"Kundennr": "7"},
                                                                   date(1990, 5, 1))
    assert (anna.consent_status, anna.purchase_count, anna.is_blocked) == (UNKNOWN, 0, False)
    assert anna.created_at is not None and anna.updated_at is not None


@pytest.mark.django_db
def test_insert_refuses_a_stored_number_unless_told_to_skip_it(make_contact):
    stored = make_contact(phone="+4915123000001", first_name="Anna")
    rows = [{"phone": "+4915123000001", "country": "DE", "first_name": "Other"},
            {"phone": "+4915123000002", "country": "DE", "first_name": "Ben"}]

    with pytest.raises(IntegrityError):
        contacts_insert(rows=rows)
    assert Contact.objects.count() == 1  # all or nothing

    ids = contacts_insert(rows=rows, skip_existing=True)

    assert list(ids) == ["+4915123000002"]
    stored.refresh_from_db()
    assert stored.first_name == "Anna"


@pytest.mark.django_db
def test_ensure_finds_or_creates_every_number_once(make_contact):
    known = make_contact(phone="+4915123000001")

    ids, created = contacts_ensure(phones={"+4915123000001", "+491701234567"})
    again, created_again = contacts_ensure(phones={"+491701234567"})

    new = Contact.objects.get(phone="+491701234567")
    assert ids == {"+4915123000001": known.pk, "+491701234567": new.pk}
    assert (created, created_again, again) == (1, 0, {"+491701234567": new.pk})
    assert new.country == "DE"


@pytest.mark.django_db
def test_update_writes_each_group_of_fields_and_stamps_the_time(make_contact):
    anna, ben = make_contact(first_name="Anna", city=""), make_contact(first_name="Ben")
    later = timezone.now() + timedelta(minutes=5)

    contacts_update(changes={
        ("city", "first_name"): [(anna.pk, {"city": "Köln", "first_name": "Anne"})],
        ("attributes", "birth_date", "consent_at", "consent_status"): [
            (ben.pk, {"attributes": {"Filiale": "West"}, "birth_date": date(1980, 1, 2),
                      "consent_at": later, "consent_status": IN})],
    }, now=later)

    anna.refresh_from_db()
    ben.refresh_from_db()
    assert (anna.first_name, anna.city, anna.updated_at) == ("Anne", "Köln", later)
    assert (ben.first_name, ben.attributes, ben.birth_date) == ("Ben", {"Filiale": "West"},
                                                                date(1980, 1, 2))
    assert (ben.consent_status, ben.consent_at, ben.updated_at) == (IN, later, later)


@pytest.mark.django_db
def test_delete_counts_the_contacts_that_went(make_contact):
    gone, kept = make_contact(), make_contact()

    assert contacts_delete(ids=[gone.pk, gone.pk + kept.pk + 1000]) == 1
    assert list(Contact.objects.values_list("pk", flat=True)) == [kept.pk]
