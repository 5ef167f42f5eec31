"""Erasure empties the stored webhook bodies of the subject's number, and only those."""

from __future__ import annotations

import hashlib
import json

import pytest

from campaigns.models import WebhookDelivery
from crm.privacy import contact_erase
from tests.campaigns.fake_cloud_api import message_payload, status_payload
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

SUBJECT = "+491701234567"  # national digits 1701234567 …
NEIGHBOUR = "+4917012345678"  # … are inside this number's digits, and inside a timestamp


def _store(payload: dict, *, compact: bool = False) -> WebhookDelivery:
    body = json.dumps(payload, separators=(",", ":") if compact else None).encode()
    return WebhookDelivery.objects.create(body=body, sha256=hashlib.sha256(body).hexdigest())


def test_only_the_subjects_bodies_are_emptied_not_a_number_that_contains_its_digits():
    subject = ContactFactory(phone=SUBJECT)
    ContactFactory(phone=NEIGHBOUR)
    subjects = [
        _store(message_payload(SUBJECT, "Hallo", message_id="wamid.s1"), compact=True),
        _store(status_payload("wamid.s2", "read", SUBJECT)),
    ]
    others = [
        _store(message_payload(NEIGHBOUR, "Hallo", message_id="wamid.n1"), compact=True),
        _store(status_payload("wamid.n2", "delivered", NEIGHBOUR)),
        # Another customer's status whose Unix timestamp spells the subject's national digits.
        _store(status_payload("wamid.n3", "sent", "+4930123456", timestamp=1701234567)),
    ]

    contact_erase(contact=subject, via="admin", reason="test")

    for delivery in subjects:
        delivery.refresh_from_db()
        assert bytes(delivery.body) == b"" and delivery.processed_at is not None
    for delivery in others:
        body = bytes(WebhookDelivery.objects.get(pk=delivery.pk).body)
        assert body and b"wamid.n" in body
