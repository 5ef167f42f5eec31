"""Access (GDPR Art. 15): everything held about the customer, as JSON and as a page."""

from __future__ import annotations

import json

from django.core.management import call_command
from django.urls import reverse

from crm.privacy import privacy_parts
from tagging.roles import AGENTS, MARKETERS, TAG_ADMINISTRATORS
from tests.factories import UserFactory
from tests.privacy.conftest import FIRST, LAST, PHONE


def _user(role: str):
    from django.contrib.auth.models import Group

    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def test_the_json_export_holds_every_kind_of_data_of_the_customer(customer, tmp_path):
    path = tmp_path / "out.json"
    call_command("export_contact_data", "0151 23987654", str(path))
    data = json.loads(path.read_text(encoding="utf-8"))

    assert set(data) >= {part.name for part in privacy_parts}
    assert data["profile"]["phone"] == PHONE
    assert (data["profile"]["first_name"], data["profile"]["last_name"]) == (FIRST, LAST)
    assert data["profile"]["consent_status"] == "opted_in"
    assert [t["tag"] for t in data["tags"]] == ["VIP"]
    assert [(h["action"], h["tag"]) for h in data["tag_history"]] == [
        ("added", "VIP"), ("added", "Sport"), ("removed", "Sport")]
    purchase = next(e for e in data["events"] if e["kind"] == "purchase")
    assert (purchase["amount"], purchase["product"]) == ("49.90", "Lippenstift")
    [message] = data["messages"]
    assert message["campaign"] == "Spring" and message["read_at"]
    assert [s["status"] for s in message["statuses"]] == ["delivered", "read"]
    assert FIRST in data["inbound_messages"][0]["text"]
    assert data["imports"][0]["created_the_contact"] is True
    assert data["imports"][0]["file"] == "list.csv"


def test_the_readable_page_is_for_marketers_and_tag_administrators_only(customer, client):
    url = reverse("admin:crm_contact_data_export", args=[customer["contact"].pk])
    for role, allowed in ((MARKETERS, True), (TAG_ADMINISTRATORS, True), (AGENTS, False)):
        client.force_login(_user(role))
        response = client.get(url)
        assert response.status_code == (200 if allowed else 403), role
        if allowed:
            page = response.content.decode()
            assert FIRST in page and "Lippenstift" in page and "Spring" in page
    client.force_login(_user(MARKETERS))
    download = client.get(url, {"format": "json"})
    assert download["Content-Disposition"].startswith("attachment")
    assert json.loads(download.content)["profile"]["last_name"] == LAST


def test_the_contact_page_links_to_the_data_and_to_erasure_by_role(customer, client):
    url = reverse("admin:crm_contact_change", args=[customer["contact"].pk])
    client.force_login(_user(MARKETERS))
    page = client.get(url).content.decode()
    assert "Data held about this contact" in page and "Erase on request" not in page
    client.force_login(_user(TAG_ADMINISTRATORS))
    page = client.get(url).content.decode()
    assert "Erase on request" in page
