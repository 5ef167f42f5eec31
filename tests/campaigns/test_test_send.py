"""“Send a test message” from the template page, through the configured sender."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from campaigns.backends import locmem
from campaigns.models import Send
from campaigns.services import CampaignError, template_test_send


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


def url(template) -> str:
    return reverse("admin:campaigns_template_test_send", args=[template.pk])


def body_text(message: dict) -> str:
    return message["template"]["components"][0]["parameters"][0]["text"]


def test_template_page_links_to_the_test_send(admin_client_, template):
    page = admin_client_.get(reverse("admin:campaigns_template_change", args=[template.pk]))
    assert url(template) in page.content.decode()


def test_test_send_normalises_the_number_and_reports_the_message_id(
        admin_client_, template, outbox):
    response = admin_client_.post(url(template), {"phone": "0151 2345 6789"}, follow=True)

    assert [m["to"] for m in outbox] == ["4915123456789"]
    assert body_text(outbox[0]) == "Kundin/Kunde"  # no contact: the fallback
    page = response.content.decode()
    assert "Test message accepted by WhatsApp for 0151 2345 6789" in page
    assert outbox[0]["id"] in page
    assert not Send.objects.exists()  # not part of any campaign


def test_test_send_uses_the_chosen_contacts_values(admin_client_, template, outbox,
                                                   make_contact):
    chen = make_contact(salutation="Frau", last_name="Chen")
    admin_client_.post(url(template), {"phone": "+4915123999999", "contact": chen.pk})
    assert body_text(outbox[0]) == "Frau Chen"
    assert outbox[0]["to"] == "4915123999999"


def test_test_send_to_a_known_number_uses_that_contact(template, outbox, make_contact):
    make_contact(phone="+4915123000777", salutation="Herr", last_name="Wong")
    template_test_send(template=template, phone="+49 1512 3000777")
    assert body_text(outbox[0]) == "Herr Wong"


def test_invalid_number_is_a_clear_form_error(admin_client_, template, outbox):
    response = admin_client_.post(url(template), {"phone": "+49 12"})
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert outbox == []
    with pytest.raises(CampaignError, match="is not a phone number"):
        template_test_send(template=template, phone="hello")


def test_whatsapp_error_is_shown_as_an_admin_message(admin_client_, template, outbox):
    locmem.errors["+4915123456789"] = [132001]
    response = admin_client_.post(url(template), {"phone": "+4915123456789"}, follow=True)
    page = response.content.decode()
    assert "WhatsApp refused the test message" in page and "132001" in page
    assert outbox == []


def test_only_users_who_may_change_templates_or_campaigns_can_test_send(
        client, staff_user, template, outbox):
    client.force_login(staff_user)
    staff_user.user_permissions.add(Permission.objects.get(codename="view_template"))
    assert client.post(url(template), {"phone": "+4915123456789"}).status_code == 403
    assert outbox == []

    staff_user.user_permissions.add(Permission.objects.get(codename="change_campaign"))
    client.post(url(template), {"phone": "+4915123456789"})
    assert len(outbox) == 1
