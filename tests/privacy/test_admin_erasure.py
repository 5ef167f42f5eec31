"""Erasure from the admin: tag administrators and superusers, after a confirmation page."""

from __future__ import annotations

import html
import re

from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import Contact, Erasure
from crm.privacy import privacy_parts
from tagging.roles import MARKETERS, TAG_ADMINISTRATORS
from tests.factories import UserFactory
from tests.privacy.conftest import FIRST, PHONE


def _user(role: str):
    user = UserFactory(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


def test_tag_administrator_erases_after_seeing_what_will_go(customer, client):
    contact = customer["contact"]
    admin = _user(TAG_ADMINISTRATORS)
    client.force_login(admin)
    changelist = reverse("admin:crm_contact_changelist")
    response = client.post(changelist, {"action": "erase_selected",
                                        "_selected_action": [contact.pk]})
    assert response.status_code == 302
    confirmation = client.get(response["Location"])
    page = confirmation.content.decode()
    assert FIRST in page and "cannot be undone" in page
    assert "Tags" in page and "Campaign messages and their statuses" in page
    assert not Erasure.objects.exists()  # nothing happens before the confirmation

    done = client.post(reverse("admin:crm_contact_erase"),
                       {"ids": str(contact.pk), "reason": "asked by phone", "confirm": "1"})
    assert done.status_code == 302
    erasure = Erasure.objects.get()
    assert (erasure.actor, erasure.via, erasure.reason) == (admin, "admin", "asked by phone")
    assert not Contact.objects.filter(phone=PHONE).exists()


def test_marketers_neither_see_the_action_nor_reach_the_page(customer, client):
    client.force_login(_user(MARKETERS))
    changelist = client.get(reverse("admin:crm_contact_changelist")).content.decode()
    assert "erase_selected" not in changelist
    response = client.post(reverse("admin:crm_contact_erase"),
                           {"ids": str(customer["contact"].pk), "confirm": "1"})
    assert response.status_code == 403
    assert not Erasure.objects.exists()


HISTORY_TABLES = ("crm_event", "tagging_tagassignment", "tagging_assignmenthistory",
                  "campaigns_send", "campaigns_statusevent", "campaigns_inboundmessage",
                  "campaigns_optout", "campaigns_deletionrequest", "campaigns_exclusion",
                  "imports_importjob", "imports_importedchange", "imports_importedcontact")


def test_the_confirmation_counts_what_will_go_without_reading_it(customer, client):
    contact = customer["contact"]
    expected = []
    for part in privacy_parts:  # what the full export holds, counted by hand
        rows = part.export(contact)
        expected.append((str(part.label), len(rows) if isinstance(rows, list) else 1))
    assert dict(expected)["tag history"] >= 3 and dict(expected)["events"] >= 3
    client.force_login(_user(TAG_ADMINISTRATORS))
    url = reverse("admin:crm_contact_erase") + f"?ids={contact.pk}"
    with CaptureQueriesContext(connection) as captured:
        page = client.get(url).content.decode()
    shown = re.findall(r"<tr><th>([^<]+)</th><td>(\d+) rows?</td></tr>", page)
    assert [(html.unescape(label), int(n)) for label, n in shown] == [
        (label[:1].upper() + label[1:], n) for label, n in expected]
    reads = [q["sql"] for q in captured.captured_queries
             if any(f'FROM "{table}"' in q["sql"] for table in HISTORY_TABLES)]
    assert reads and all(sql.startswith("SELECT COUNT(") for sql in reads), reads
