"""Type an expression, see the live count, run “Manage tags” on all matches, see the result."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.utils import timezone

from crm.models import Contact
from tagging.models import TagAssignment
from tagging.services import tags_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_marketer_tags_everyone_matching_an_expression(login, live_server, make_contact,
                                                        make_tag, monkeypatch):
    # Two rows per page, so “all matches” really means more than the visible page.
    monkeypatch.setattr(admin.site._registry[Contact], "list_per_page", 2)
    inactive, ordered = make_tag(name="Inaktiver Kunde"), make_tag(name="Bestellt")
    potential = make_tag(name="Hohes Potenzial - Nachverfolgung erforderlich")
    recent = timezone.now() - timedelta(days=2)
    matching = make_contact.create_batch(5, last_interaction_at=recent)
    buyers = make_contact.create_batch(2, last_interaction_at=recent)
    make_contact.create_batch(2)  # never interacted
    tags_change(contacts=matching, add=[inactive])
    tags_change(contacts=buyers, add=[ordered, inactive])

    page = login()
    page.goto(f"{live_server.url}/admin/crm/contact/")
    page.fill("#tw-expr", 'last_interaction within 30d AND NOT "Bestelt"')
    page.wait_for_function(
        "document.querySelector('#tw-expr-error').textContent.includes('Bestellt')")
    assert "did you mean “Bestellt”" in page.inner_text("#tw-expr-error")
    page.fill("#tw-expr", 'last_interaction within 30d AND NOT "Bestellt"')
    page.wait_for_function("document.querySelector('#tw-count').textContent.startsWith('5 ')")
    assert page.inner_text("#tw-count") == "5 contacts match"

    page.click("#tw-audience input[type=submit]")
    page.wait_for_selector("#result_list")
    page.check("#action-toggle")
    page.click(".actions .question a")  # “Select all 5 contacts”
    page.select_option("select[name=action]", "manage_tags")
    page.click("button[name=index]")

    # The first step already says how many are selected, and per tag who gains or loses it.
    assert "5 contacts selected." in page.inner_text("#tw-selection-size")
    page.fill("#tw-picker-search", "potenz")
    pick = page.locator(f"input[name=add][value='{potential.pk}']")
    assert pick.locator("xpath=..").inner_text().split() == ["+", "5"]
    pick.check()
    page.fill("#tw-picker-search", "")
    page.check(f"input[name=remove][value='{inactive.pk}']")
    page.click("#tw-preview-button")
    assert "5 contacts selected." in page.inner_text("#tw-preview-total")
    rows = page.locator("#tw-preview tbody tr")
    assert [r.inner_text().split("\t") for r in rows.all()] == [
        [potential.name, "5", "0"], [inactive.name, "0", "5"]]
    assert not TagAssignment.objects.filter(tag=potential).exists()

    page.click("#tw-apply")
    page.wait_for_selector(".messagelist .success")
    assert "Tags changed on 5 contacts: 5 added, 5 removed." in page.inner_text(".messagelist")
    holders = set(TagAssignment.objects.filter(tag=potential).values_list("contact", flat=True))
    assert holders == {c.pk for c in matching}
    still_inactive = set(TagAssignment.objects.filter(tag=inactive)
                         .values_list("contact", flat=True))
    assert still_inactive == {c.pk for c in buyers}
