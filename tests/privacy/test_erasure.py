"""Erasure (GDPR Art. 17): afterwards no table and no stored file names the customer."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from campaigns.backends import locmem
from campaigns.models import InboundMessage, Send, SendStatus
from campaigns.selectors import campaign_report
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_create, campaign_launch
from crm.events import EventIn, events_record
from crm.models import Contact, Erasure, EventKind
from crm.privacy import number_hash
from tagging.imports.models import ConsentBasis
from tagging.imports.services import import_create, import_run
from tagging.models import AssignmentHistory, TagAssignment
from tests.privacy.conftest import FIRST, LAST, PHONE, database_dump, files_dump, traces


def _totals(report: dict) -> dict:
    keep = ("total", "sent", "delivered", "read", "replied", "failed", "excluded",
            "conversions", "revenue", "delivery_rate", "read_rate", "reply_rate")
    return {key: report.get(key) for key in keep}


def test_the_customer_is_there_before_the_erasure(customer, settings):
    # The test below proves something only if every trace was there to begin with.
    dump = database_dump()
    assert PHONE in dump and PHONE[1:] in dump and FIRST in dump and LAST in dump
    assert "0151 23987654" in files_dump(settings.MEDIA_ROOT)


def test_erasure_leaves_no_trace_of_number_or_name_and_keeps_report_totals(customer,
                                                                          settings):
    campaign, contact = customer["campaign"], customer["contact"]
    before = _totals(campaign_report(campaign))
    assert before["read"] == 1 and before["replied"] == 1 and before["conversions"] == 1

    call_command("erase_contact", "0151-2398 7654", reason="e-mail of 3 May")

    assert traces(database_dump()) == []
    assert traces(files_dump(settings.MEDIA_ROOT)) == []
    assert _totals(campaign_report(campaign)) == before
    assert not TagAssignment.objects.filter(contact_id=contact.pk).exists()
    assert not AssignmentHistory.objects.filter(contact_id=contact.pk).exists()
    assert not InboundMessage.objects.filter(contact_id=contact.pk).exists()
    erasure = Erasure.objects.get()
    assert (erasure.via, erasure.reason) == ("command", "e-mail of 3 May")
    assert erasure.phone_hash == number_hash(PHONE) and erasure.removed["profile"] >= 1
    # The bystander in the same import, campaign and files is untouched.
    bystander = customer["bystander"]
    bystander.refresh_from_db()
    assert bystander.last_name == "Bystander"
    assert bystander.phone in files_dump(settings.MEDIA_ROOT)
    assert Send.objects.get(contact=bystander).phone == bystander.phone


def test_an_erased_number_is_never_imported_or_messaged_again(customer, tmp_path):
    call_command("erase_contact", PHONE)
    upload = tmp_path / "again.csv"
    upload.write_text(f"phone,first_name\n+49 151 23987654,{FIRST}\n", encoding="utf-8")
    job = import_create(path=upload, consent_basis=ConsentBasis.OPTED_IN)
    import_run(job=job)
    job.refresh_from_db()
    assert (job.created, job.failed) == (0, 1)
    assert job.errors == {"erased_number": 1} and not Contact.objects.filter(phone=PHONE).exists()

    # Another way in (a shop order, the API): the contact comes back blocklisted.
    events_record(events=[EventIn(kind=EventKind.PURCHASE, phone=PHONE)])
    back = Contact.objects.get(phone=PHONE)
    assert back.is_blocked and back.consent_status == "opted_out"
    # Even if someone lifts that by hand, the send guard checks the hash.
    Contact.objects.filter(pk=back.pk).update(is_blocked=False, consent_status="opted_in")
    locmem.reset()
    campaign = campaign_create(name="Later", template=customer["template"],
                               audience="purchases >= 0", rate_per_second=1000)
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert PHONE[1:] not in str(locmem.outbox)
    assert Send.objects.get(campaign=campaign, contact=back).status == SendStatus.CANCELLED


def test_erasing_twice_or_an_unknown_number_says_so(customer):
    call_command("erase_contact", PHONE)
    with pytest.raises(CommandError, match="No contact has the number"):
        call_command("erase_contact", PHONE)
    with pytest.raises(CommandError, match=r"not a phone number|too short|not a valid"):
        call_command("erase_contact", "hello")
