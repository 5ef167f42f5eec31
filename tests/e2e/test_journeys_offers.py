"""Build an offer and a journey in the admin; a tag added afterwards walks a contact through
the journey and its welcome leaves through the locmem sender."""

from __future__ import annotations

import pytest

from campaigns.backends import locmem
from campaigns.journeys.models import Enrollment, Journey
from campaigns.services import template_create
from tagging.offers.models import Offer
from tagging.services import tags_change
from tests.factories import ContactFactory, TagFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_build_an_offer_and_a_journey_in_the_admin(login, live_server):
    vip = TagFactory(name="VIP")
    neukunde = TagFactory(name="Neukunde")
    member = ContactFactory(first_name="Mia")
    tags_change(contacts=[member], add=[vip])
    template_create(name="willkommen", language="de", body="Willkommen, {{1}}!",
                    variables=[{"source": "first_name"}])
    locmem.reset()

    page = login()
    page.goto(f"{live_server.url}/admin/offers/offer/add/")
    page.fill("#id_name", "VIP-Vorverkauf")
    page.fill("#id_slug", "vip-vorverkauf")
    page.fill("#id_audience", '"VIP"')
    page.fill("#id_code", "HERBST20")
    page.click("input[name=_save]")
    row = page.locator("#result_list tbody tr", has_text="VIP-Vorverkauf").inner_text()
    assert "vip-vorverkauf" in row and "valid" in row and "1" in row.split()
    assert Offer.objects.get().code == "HERBST20"

    page.goto(f"{live_server.url}/admin/journeys/journey/add/")
    page.fill("#id_name", "Willkommen")
    page.check("#id_active")
    page.select_option("#id_trigger", "tag_added")
    page.select_option("#id_trigger_tag", label=str(neukunde))
    page.fill("#id_steps-0-position", "1")
    page.select_option("#id_steps-0-kind", "send")
    page.select_option("#id_steps-0-template", label="willkommen (de)")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=would enter today")
    assert "Entered 0" in page.locator("body").inner_text()
    journey = Journey.objects.get(name="Willkommen")
    assert journey.active and journey.steps.count() == 1

    tags_change(contacts=[member], add=[neukunde])  # as a rule would; commits at once
    assert Enrollment.objects.get(journey=journey).status == "completed"
    assert [m["to"] for m in locmem.outbox] == [member.phone.lstrip("+")]
    page.reload()
    report = page.locator("body").inner_text()
    assert "Entered 1" in report and "Messages: 1 sent" in report
