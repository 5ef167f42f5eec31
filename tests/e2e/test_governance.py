import pytest
from playwright.sync_api import expect

from tagging.models import AssignmentHistory
from tagging.services import tags_change
from tests.e2e.conftest import PASSWORD
from tests.tagging.governance import user_in_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_agent_searches_adds_and_removes_a_tag_on_the_profile(login, live_server, make_contact,
                                                              make_dimension, make_tag):
    interest = make_dimension(name="Interesse", colour="#D6336C")
    make_tag(dimension=interest, name="Interesse-Sport", symbol="⚽")
    make_tag(dimension=interest, name="Interesse-Reisen")
    vip = make_tag(dimension=make_dimension(name="Kaufkraft"), name="VIP", symbol="★")
    contact = make_contact(first_name="Mei", last_name="Chen")
    tags_change(contacts=[contact], add=[vip])
    agent = user_in_role("agent", allowed_dimension=interest, password=PASSWORD)

    page = login(agent)
    page.goto(f"{live_server.url}/admin/crm/contact/{contact.pk}/change/")
    panel = page.locator("#tw-tag-profile")
    # A tag of a dimension the agent was not granted: visible, not removable.
    vip_chip = panel.locator(".tw-chip-profile", has_text="VIP")
    assert vip_chip.locator(".tw-remove").count() == 0

    page.locator(".tw-tag-search").press_sequentially("spo", delay=30)
    suggestion = panel.locator(".tw-suggestions [data-tw-add]")
    expect(suggestion).to_have_count(1)
    assert "Interesse-Sport" in suggestion.inner_text()
    suggestion.click()

    chip = panel.locator(".tw-chip-profile", has_text="Interesse-Sport")
    chip.wait_for()
    assert "⚽ Interesse-Sport" in chip.inner_text()
    assert "manual" in chip.locator(".tw-origin").inner_text()
    expect(page.locator(".tw-tag-message")).to_have_text("“Interesse-Sport” added.")
    assert set(contact.tags.values_list("name", flat=True)) == {"VIP", "Interesse-Sport"}

    page.screenshot(path="var/e2e-governance-profile.png")
    chip.locator(".tw-remove").click()
    chip.wait_for(state="detached")
    expect(page.locator(".tw-tag-message")).to_have_text("“Interesse-Sport” removed.")
    assert set(contact.tags.values_list("name", flat=True)) == {"VIP"}
    assert list(AssignmentHistory.objects.filter(actor=agent).order_by("id")
                .values_list("action", flat=True)) == ["added", "removed"]
