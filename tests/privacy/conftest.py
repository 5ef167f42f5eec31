"""Fixtures for privacy: one customer with a bit of everything Tagwerk stores."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from campaigns.backends import locmem
from campaigns.intake import app_secret
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_create, campaign_launch, template_create
from crm.events import EventIn, events_record
from crm.models import Contact, EventKind
from tagging.imports.models import ConsentBasis
from tagging.imports.services import import_analyse, import_create, import_run
from tagging.services import tags_change
from tests.campaigns.fake_cloud_api import message_payload, sign, status_payload
from tests.factories import ContactFactory, DimensionFactory, TagFactory, UserFactory

PHONE = "+4915123987654"
NATIONAL_DIGITS = "15123987654"
WRITINGS = [PHONE, PHONE[1:], "015123987654", "0151 23987654", "0151-23987654",
            "+49 151 23987654", "+49-151-2398-7654", "0049 151 23987654"]
FIRST, LAST = "Zorbalina", "Quxworth"
WEBHOOK_URL = "/webhooks/whatsapp/"


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.WHATSAPP_APP_SECRET = "test-app-secret"
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    def _post(payload: dict):
        body = json.dumps(payload).encode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(WEBHOOK_URL, body, content_type="application/json",
                                   HTTP_X_HUB_SIGNATURE_256=sign(body, app_secret()))
        assert response.status_code == 200
        return response
    return _post


@pytest.fixture
def customer(db, post, tmp_path):
    """Zorbalina Quxworth: imported with a tag, tagged again, bought, got a campaign message
    that was delivered and read, and replied; plus a bystander who stays untouched."""
    vip = TagFactory(name="VIP", dimension=DimensionFactory(name="Status"))
    other = TagFactory(name="Sport", dimension=DimensionFactory(name="Interesse"))
    bystander = ContactFactory(first_name="Bert", last_name="Bystander")
    upload = tmp_path / "list.csv"
    upload.write_text(f"phone,first_name,last_name,tags\n0151 23987654,{FIRST},{LAST},VIP\n"
                      f"{bystander.phone},Bert,Bystander,VIP\n", encoding="utf-8")
    job = import_create(path=upload, consent_basis=ConsentBasis.OPTED_IN,
                        consent_source="shop checkout")
    import_analyse(job=job)
    import_run(job=job)
    contact = Contact.objects.get(phone=PHONE)
    tags_change(contacts=[contact.pk], add=[other])
    tags_change(contacts=[contact.pk], remove=[other])
    template = template_create(name="spring_offer", language="de", body="Hallo {{1}}!",
                               variables=["first_name"])
    campaign = campaign_create(name="Spring", template=template, audience='"VIP"',
                               rate_per_second=1000)
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    send = campaign.sends.get(contact=contact)
    for status in ("delivered", "read"):
        post(status_payload(send.wamid, status, PHONE))
    post(message_payload(PHONE, f"Danke! Gruß {FIRST} {LAST}, 0151 23987654",
                         message_id="wamid.reply-1", context=send.wamid))
    events_record(events=[EventIn(
        kind=EventKind.PURCHASE, contact_id=contact.pk, amount=Decimal("49.90"), currency="EUR",
        product="Lippenstift", source_id="order-1001",
        payload={"customer": f"{FIRST} {LAST}", "phone": "+49 151 23987654"})])
    # Staff edited the contact in the admin: Django's log names it.
    LogEntry.objects.create(user=UserFactory(), content_type=ContentType.objects.get_for_model(
        Contact), object_id=str(contact.pk), object_repr=str(contact), action_flag=CHANGE,
        change_message="[]")
    assert vip.assignments.filter(contact=contact).exists()
    return {"contact": contact, "campaign": campaign, "job": job, "bystander": bystander,
            "template": template}


def database_dump() -> str:
    """Every text and binary value of every table, as one string (SQLite or PostgreSQL)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            name = connection.ops.quote_name(table)
            cursor.execute(f"SELECT * FROM {name}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("utf-8", "replace")
                    if value is not None:
                        parts.append(str(value))
    return "\n".join(parts)


def files_dump(root: Path) -> str:
    if not root.exists():
        return ""
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in root.rglob("*") if p.is_file())


def traces(text: str) -> list[str]:
    """The writings of the customer's number and name found in ``text``."""
    found = [w for w in WRITINGS if w in text]
    if NATIONAL_DIGITS in text:
        found.append(NATIONAL_DIGITS)
    return found + [n for n in (FIRST, LAST) if n.casefold() in text.casefold()]
