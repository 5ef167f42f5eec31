"""A customer writes a deletion keyword, confirms by reply, and is erased."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.backends import locmem
from campaigns.models import DeletionKeyword, DeletionRequest
from crm.models import Contact, Erasure
from tests.campaigns.fake_cloud_api import message_payload
from tests.factories import ContactFactory
from tests.privacy.conftest import PHONE

OTHER = "+4915123555111"


def _texts_to(phone: str) -> list[str]:
    return [m["text"]["body"] for m in locmem.outbox
            if m.get("type") == "text" and m["to"] == phone.lstrip("+")]


@pytest.mark.parametrize("word", ["LÖSCHEN", "delete", "删除", "Löschen!"])
def test_keyword_asks_for_confirmation_then_a_yes_erases(db, post, word):
    contact = ContactFactory(phone=PHONE, language="de")
    post(message_payload(PHONE, word, message_id="wamid.k1"))

    [request] = DeletionRequest.objects.filter(contact=contact)
    assert request.confirmation_sent_at and not Erasure.objects.exists()
    [text] = _texts_to(PHONE)
    assert "JA" in text

    post(message_payload(PHONE, "Ja", message_id="wamid.k2"))
    erasure = Erasure.objects.get()
    assert erasure.via == "keyword"
    assert not Contact.objects.filter(phone=PHONE).exists()


def test_the_request_names_the_confirming_word_of_the_customers_language(db, post):
    ContactFactory(phone=PHONE, language="zh")
    ContactFactory(phone=OTHER, language="en")
    post(message_payload(PHONE, "删除", message_id="wamid.k1"))
    post(message_payload(OTHER, "delete", message_id="wamid.k2"))
    assert "“是”" in _texts_to(PHONE)[0] and "“YES”" in _texts_to(OTHER)[0]


def test_without_a_confirming_reply_nothing_is_erased(db, post):
    ContactFactory(phone=PHONE)
    post(message_payload(PHONE, "DELETE", message_id="wamid.k1"))
    post(message_payload(PHONE, "Wie bitte?", message_id="wamid.k2"))
    assert not Erasure.objects.exists()
    assert Contact.objects.filter(phone=PHONE).exists()


def test_a_yes_after_the_request_expired_erases_nothing(db, post, settings):
    contact = ContactFactory(phone=PHONE)
    post(message_payload(PHONE, "DELETE", message_id="wamid.k1"))
    DeletionRequest.objects.filter(contact=contact).update(
        requested_at=timezone.now() - timedelta(hours=settings.PRIVACY_DELETION_CONFIRM_HOURS,
                                                seconds=1))
    post(message_payload(PHONE, "YES", message_id="wamid.k2"))
    assert not Erasure.objects.exists()


def test_keywords_come_from_the_admin_and_the_setting(db, post, settings):
    ContactFactory(phone=PHONE)
    ContactFactory(phone=OTHER)
    DeletionKeyword.objects.filter(word="DELETE").update(active=False)
    settings.PRIVACY_DELETION_KEYWORDS = ["VERGISS MICH"]
    post(message_payload(PHONE, "DELETE", message_id="wamid.k1"))
    post(message_payload(OTHER, "vergiss mich", message_id="wamid.k2"))
    assert list(DeletionRequest.objects.values_list("contact__phone", flat=True)) == [OTHER]


def test_a_word_inside_a_longer_message_is_not_a_request(db, post):
    ContactFactory(phone=PHONE)
    post(message_payload(PHONE, "Bitte nicht löschen, ich mag eure Angebote",
                         message_id="wamid.k1"))
    assert not DeletionRequest.objects.exists() and _texts_to(PHONE) == []
