"""Undo puts back what an import overwrote on existing contacts, unless it changed since."""

from __future__ import annotations

import datetime

import pytest

from crm.models import ConsentStatus, Contact
from tagging.imports.models import ConsentBasis, UpdateMode
from tagging.imports.services import import_undo
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

OVERWRITE = {"update_mode": UpdateMode.OVERWRITE}


def test_undo_restores_overwritten_and_filled_facts(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", first_name="Anna", last_name="", city="Bonn",
                   birth_date=datetime.date(1990, 5, 1), gender="")
    job = run_import("phone,first_name,last_name,city,birth_date,gender\n"
                     "+4915123000001,Anne,Schmidt,Köln,02.03.1985,f\n", **OVERWRITE)
    contact = Contact.objects.get()
    assert (contact.first_name, contact.city, contact.birth_date) == (
        "Anne", "Köln", datetime.date(1985, 3, 2))

    report = import_undo(job=job)

    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.city, contact.birth_date,
            contact.gender) == ("Anna", "", "Bonn", datetime.date(1990, 5, 1), "")
    assert (report["contacts_restored"], report["contacts_changed_since"]) == (1, 0)


def test_a_field_changed_after_the_import_keeps_its_later_value(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", first_name="Anna", city="Bonn")
    job = run_import("phone,first_name,city\n+4915123000001,Anne,Köln\n", **OVERWRITE)
    Contact.objects.filter(phone="+4915123000001").update(city="Hamburg")  # an agent, later

    report = import_undo(job=job)

    contact = Contact.objects.get()
    assert (contact.first_name, contact.city) == ("Anna", "Hamburg")
    assert (report["contacts_restored"], report["contacts_changed_since"]) == (1, 1)


def test_undo_restores_attributes_key_by_key(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", attributes={"Kundennr": "1", "Filiale": "Nord"})
    job = run_import("phone,Kundennr,Filiale,Segment\n+4915123000001,2,Süd,A\n",
                     extra_columns_to_attributes=True, **OVERWRITE)
    contact = Contact.objects.get()
    contact.attributes = {**contact.attributes, "Filiale": "West", "Neu": "x"}
    contact.save()

    import_undo(job=job)

    contact.refresh_from_db()
    assert contact.attributes == {"Kundennr": "1", "Filiale": "West", "Neu": "x"}


def test_undo_takes_back_the_consent_the_import_gave(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", consent_status=ConsentStatus.UNKNOWN,
                   consent_source="")
    job = run_import("phone\n+4915123000001\n", consent_basis=ConsentBasis.OPTED_IN,
                     consent_source="Messe 2026")
    assert Contact.objects.get().consent_status == ConsentStatus.OPTED_IN

    import_undo(job=job)

    contact = Contact.objects.get()
    assert (contact.consent_status, contact.consent_source, contact.consent_at) == (
        ConsentStatus.UNKNOWN, "", None)


def test_undo_keeps_a_consent_change_made_after_the_import(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", consent_status=ConsentStatus.UNKNOWN)
    job = run_import("phone,first_name\n+4915123000001,Anne\n",
                     consent_basis=ConsentBasis.OPTED_IN, consent_source="Messe 2026",
                     **OVERWRITE)
    Contact.objects.filter(phone="+4915123000001").update(
        consent_status=ConsentStatus.OPTED_OUT, consent_source="replied STOP")

    report = import_undo(job=job)

    contact = Contact.objects.get()
    assert (contact.consent_status, contact.consent_source) == (ConsentStatus.OPTED_OUT,
                                                                "replied STOP")
    assert contact.first_name != "Anne"  # the name the import wrote is still taken back
    assert report["contacts_changed_since"] == 1


def test_a_second_undo_changes_nothing(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", first_name="Anna")
    job = run_import("phone,first_name\n+4915123000001,Anne\n", **OVERWRITE)
    import_undo(job=job)
    Contact.objects.filter(phone="+4915123000001").update(first_name="Anne")  # typed again

    report = import_undo(job=job)

    assert report["already_undone"] is True
    assert Contact.objects.get().first_name == "Anne"


def test_undoing_two_imports_in_reverse_order_restores_the_original(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", city="Bonn")
    first = run_import("phone,city\n+4915123000001,Köln\n", **OVERWRITE)
    second = run_import("phone,city\n+4915123000001,Hamburg\n", **OVERWRITE)

    import_undo(job=second)
    assert Contact.objects.get().city == "Köln"
    import_undo(job=first)

    assert Contact.objects.get().city == "Bonn"


def test_the_job_page_says_what_undo_put_back(vocabulary, run_import, client, superuser):
    from django.urls import reverse

    ContactFactory(phone="+4915123000001", first_name="Anna")
    job = run_import("phone,first_name\n+4915123000001,Anne\n", **OVERWRITE)
    import_undo(job=job)
    client.force_login(superuser)

    page = client.get(reverse("admin:imports_importjob_job", args=[job.pk])).content.decode()

    assert "put back on 1 contacts" in page
