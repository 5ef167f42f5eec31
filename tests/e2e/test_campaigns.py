"""Create a template and a campaign, launch it with the sandbox sender, watch the report fill."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.backends.sandbox import sandbox_flush
from campaigns.models import Campaign, OptOutKeyword, Send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def report_value(page, key: str) -> str:
    return page.locator(f'#campaign-report td[data-key="{key}"]').inner_text()


def test_create_launch_and_watch_the_report_fill(login, live_server, make_contact, settings):
    settings.WHATSAPP_BACKEND = "campaigns.backends.sandbox.SandboxBackend"
    settings.WHATSAPP_APP_SECRET = "e2e-secret"
    # Transactional tests flush the data migrations' rows: restore the keyword the check uses.
    OptOutKeyword.objects.get_or_create(word="STOP")
    for last_name in ("Chen", "Bauer", "Yilmaz", "Novak"):
        make_contact(salutation="Frau", last_name=last_name)
    make_contact(consent_status="opted_out")

    page = login()
    page.goto(f"{live_server.url}/admin/campaigns/template/add/")
    page.fill("#id_name", "spring_offer")
    page.fill("#id_language", "de")
    page.fill("#id_body", "Hallo {{1}}, 15% auf alles! Antworte STOP zum Abmelden.")
    page.fill("#id_variables", '["salutation_last_name"]')
    page.click("input[name=_continue]")
    page.wait_for_selector(".tw-preview")
    previews = page.locator(".tw-preview").all_inner_texts()
    # Every preview is personalised: "Frau <surname>" or the neutral fallback.
    assert previews and all(("Hallo Frau " in p or "Hallo Kundin/Kunde," in p)
                            and "{{1}}" not in p for p in previews), previews

    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Frühlingsaktion")
    page.select_option("#id_template", label="spring_offer (de)")
    page.fill("#id_audience", "purchases >= 0")
    page.fill("#id_rate_per_second", "50")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    content = page.content()
    assert "tw-check-block" not in content  # nothing blocks the launch
    assert "All checks passed" in content or "tw-check-warn" in content

    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    page.check("#result_list tbody input.action-select")
    page.select_option("select[name=action]", "launch")
    page.click("button[name=index]")
    assert "1 of 1 campaign launched" in page.locator(".messagelist").inner_text()

    campaign = Campaign.objects.get(name="Frühlingsaktion")
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert report_value(page, "recipients") == "4"
    assert report_value(page, "sent") == "4"
    assert report_value(page, "delivered").startswith("0")
    excluded = report_value(page, "excluded")
    assert "opted out of marketing" in excluded and "1" in excluded  # a sentence, not a code

    # The sandbox's webhooks fall due (beat would post them a few seconds later).
    sandbox_flush(now=timezone.now() + timedelta(minutes=1))
    page.reload()
    delivered = int(report_value(page, "delivered").split()[0])
    failed = Send.objects.filter(campaign=campaign, status="failed").count()
    assert delivered + failed == 4 and delivered > 0
    assert Send.objects.filter(campaign=campaign, read_at__isnull=False).count() == int(
        report_value(page, "read").split()[0])

    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    assert "Frühlingsaktion" in page.locator("#result_list").inner_text()


def test_use_the_suggested_send_time_and_test_send_a_template(login, live_server, settings):
    from campaigns.backends import locmem
    from campaigns.schedule import send_time_suggest
    from campaigns.services import template_create

    settings.WHATSAPP_BACKEND = "campaigns.backends.locmem.LocmemBackend"
    locmem.reset()
    template = template_create(name="spring_offer", language="de",
                               body="Hallo {{1}}! Antworte STOP zum Abmelden.",
                               variables=["salutation_last_name"])
    page = login()
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.click("#use-suggested-time")
    page.fill("#id_name", "Vorschlag")
    page.select_option("#id_template", label="spring_offer (de)")
    page.fill("#id_audience", "purchases >= 0")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    campaign = Campaign.objects.get(name="Vorschlag")
    expected = send_time_suggest(settings.TIME_ZONE)
    assert campaign.scheduled_at == expected
    assert campaign.scheduled_at.astimezone(expected.tzinfo).weekday() in (1, 2, 3)

    page.goto(f"{live_server.url}/admin/campaigns/template/{template.pk}/change/")
    page.click("#template-test-send")
    page.fill("#id_phone", "+49 151 23456789")
    page.click("#test-send-form input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "Test message accepted by WhatsApp" in page.locator(".messagelist").inner_text()
    assert [m["to"] for m in locmem.outbox] == ["4915123456789"]
