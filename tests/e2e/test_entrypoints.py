"""Create an entry point in the admin, download its QR code, and see the contact tagged
after a signed inbound WhatsApp message naming its code."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from campaigns.entrypoints.models import EntryPoint
from campaigns.intake import sign
from crm.models import Contact
from tests.campaigns.fake_cloud_api import message_payload
from tests.factories import TagFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_entry_point_qr_download_and_tagged_contact(login, live_server, settings, tmp_path):
    settings.WHATSAPP_APP_SECRET = "e2e-secret"
    settings.WHATSAPP_DISPLAY_PHONE_NUMBER = "+49 30 1234567"
    TagFactory(name="Quelle-QR-Code")
    TagFactory(name="Messe Köln 2026")

    page = login()
    page.goto(f"{live_server.url}/admin/entrypoints/entrypoint/add/")
    page.fill("#id_name", "Messe Köln 2026")
    page.fill("#id_code", "messe26")
    for tag in ("Quelle-QR-Code", "Messe Köln 2026"):
        page.select_option("#id_tags_from", label=tag)
        page.click("#id_tags_add")
    page.fill("#id_text", "Hallo! Ich war an eurem Messestand.")
    page.check("#id_consent")
    page.fill("#id_consent_text", "Mit deiner Nachricht stimmst du Angeboten per WhatsApp zu.")
    page.click("input[name=_continue]")
    page.wait_for_selector("#entry-point-qr svg")
    link = page.locator("#entry-point-link").inner_text()
    assert link.startswith("https://wa.me/49301234567?text=") and "MESSE26" in link

    with page.expect_download() as download:
        page.click("#download-png")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "qr-messe-koln-2026.png"
    assert saved.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # The customer scans it and sends the prefilled text; Meta posts the signed webhook.
    body = json.dumps(message_payload(
        "4917612345678", "Hallo! Ich war an eurem Messestand. MESSE26",
        message_id="wamid.e2e-1", timestamp=int(time.time()))).encode()
    response = httpx.post(f"{live_server.url}/webhooks/whatsapp/", content=body, timeout=10,
                          headers={"Content-Type": "application/json",
                                   "X-Hub-Signature-256": sign(body)})
    assert response.status_code == 200

    contact = Contact.objects.get(phone="+4917612345678")
    page.goto(f"{live_server.url}/admin/crm/contact/{contact.pk}/change/")
    profile = page.locator("body").inner_text()
    assert "Quelle-QR-Code" in profile and "Messe Köln 2026" in profile
    assert "entry point: Messe Köln 2026" in profile
    assert page.locator("#contact-arrivals").inner_text().count("Messe Köln 2026") == 1
    assert contact.consent_status == "opted_in"

    page.goto(f"{live_server.url}/admin/entrypoints/entrypoint/")
    row = page.locator("#result_list tbody tr", has_text="Messe Köln 2026").inner_text()
    assert "MESSE26" in row
    assert EntryPoint.objects.get().arrivals.count() == 1
