"""Time zones, quiet hours and the Tue–Thu 11:00/20:00 send-time suggestion."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from campaigns.models import Campaign, CampaignStatus, Send, SendStatus
from campaigns.schedule import campaign_time_zone, quiet_until, send_time_suggest
from campaigns.selectors import campaign_report
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_launch
from campaigns.tick import campaigns_tick
from campaigns.zones import country_time_zone

BERLIN = ZoneInfo("Europe/Berlin")
HK = ZoneInfo("Asia/Hong_Kong")


def at(year, month, day, hour, minute=0, zone=BERLIN) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


# --- Send-time suggestion ----------------------------------------------------------------

@pytest.mark.parametrize(("now", "expected"), [
    (at(2026, 11, 23, 9), at(2026, 11, 24, 11)),        # Monday → Tuesday 11:00
    (at(2026, 11, 24, 10, 59), at(2026, 11, 24, 11)),   # Tuesday before 11 → same day 11:00
    (at(2026, 11, 24, 11), at(2026, 11, 24, 20)),       # Tuesday 11:00 exactly → 20:00
    (at(2026, 11, 26, 20, 30), at(2026, 12, 1, 11)),    # Thursday evening → next Tuesday
    (at(2026, 11, 28, 12), at(2026, 12, 1, 11)),        # Saturday → Tuesday
])
def test_suggestion_is_the_next_tue_to_thu_11_or_20_oclock(now, expected):
    suggested = send_time_suggest("Europe/Berlin", now)
    assert suggested == expected
    assert suggested.tzinfo.key == "Europe/Berlin"


def test_suggestion_is_in_the_audiences_local_time():
    # Monday 23:00 UTC is already Tuesday 07:00 in Hong Kong.
    now = datetime(2026, 11, 23, 23, 0, tzinfo=ZoneInfo("UTC"))
    assert send_time_suggest("Asia/Hong_Kong", now) == at(2026, 11, 24, 11, zone=HK)
    assert send_time_suggest("Europe/Berlin", now) == at(2026, 11, 24, 11)


def test_suggestion_for_a_campaign_skips_its_quiet_hours(make_campaign):
    campaign = make_campaign(time_zone="Europe/Berlin", quiet_start=time(19),
                             quiet_end=time(8))
    assert send_time_suggest(campaign, at(2026, 11, 24, 12)) == at(2026, 11, 25, 11)


# --- Time zone of a campaign -------------------------------------------------------------

def test_country_zone_only_when_the_country_keeps_one_clock():
    assert country_time_zone("DE") == "Europe/Berlin"
    assert country_time_zone("HK") == "Asia/Hong_Kong"
    assert country_time_zone("US") is None
    assert country_time_zone("") is None


def test_campaign_zone_is_its_own_field_else_the_audiences_else_the_server(
        make_campaign, contacts, settings):
    settings.TIME_ZONE = "UTC"
    contacts(1)  # DE
    for phone in ("+85291234567", "+85291234568"):
        contacts(1, phone=phone, country="HK")
    assert campaign_time_zone(make_campaign()).key == "Asia/Hong_Kong"
    assert campaign_time_zone(make_campaign(time_zone="Europe/Berlin")).key == "Europe/Berlin"
    assert campaign_time_zone(make_campaign(audience="purchases > 100")).key == "UTC"


def test_launch_fixes_the_derived_zone_on_the_campaign(make_campaign, contacts, outbox):
    contacts(2)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.time_zone == "Europe/Berlin"


# --- Quiet hours --------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "quiet"), [
    (at(2026, 11, 24, 22), True), (at(2026, 11, 24, 3), True), (at(2026, 11, 24, 8), False),
    (at(2026, 11, 24, 20, 59), False), (at(2026, 11, 24, 21), True),
])
def test_quiet_hours_across_midnight_in_the_campaigns_zone(make_campaign, now, quiet):
    campaign = make_campaign(time_zone="Europe/Berlin", quiet_start=time(21), quiet_end=time(8))
    until = quiet_until(campaign, now)
    assert bool(until) is quiet
    if quiet:
        assert until.astimezone(BERLIN).time() == time(8) and until > now


def test_quiet_hours_are_read_in_the_campaigns_zone_not_the_servers(make_campaign, settings):
    settings.TIME_ZONE = "UTC"
    campaign = make_campaign(time_zone="Asia/Hong_Kong", quiet_start=time(21),
                             quiet_end=time(8))
    # 14:00 UTC is 22:00 in Hong Kong.
    assert quiet_until(campaign, datetime(2026, 11, 24, 14, tzinfo=ZoneInfo("UTC")))
    assert not quiet_until(campaign, datetime(2026, 11, 24, 4, tzinfo=ZoneInfo("UTC")))


def test_no_sends_during_quiet_hours_and_they_resume_by_themselves(
        make_campaign, contacts, outbox, monkeypatch):
    contacts(3)
    campaign = make_campaign(time_zone="Europe/Berlin", quiet_start=time(21),
                             quiet_end=time(8))
    night = at(2026, 11, 24, 23)
    monkeypatch.setattr("django.utils.timezone.now", lambda: night)
    campaign_launch(campaign=campaign, now=night)

    # Launched at night: recipients are snapshotted, nothing goes out.
    assert campaigns_tick(now=night) == []
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert outbox == []
    assert set(Send.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        SendStatus.QUEUED}
    report = campaign_report(campaign)
    assert report["quiet_hours"]["active"] is True
    assert "08:00" in report["quiet_hours"]["note"]

    morning = at(2026, 11, 25, 8, 1)
    monkeypatch.setattr("django.utils.timezone.now", lambda: morning)
    assert campaigns_tick(now=morning) == [campaign.pk]
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert len(outbox) == 3
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED


# --- Admin ---------------------------------------------------------------------------------

@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


def test_campaign_form_shows_the_suggested_time_and_a_button(admin_client_, template):
    page = admin_client_.get(reverse("admin:campaigns_campaign_add")).content.decode()
    assert 'id="send-time-suggestion"' in page and 'id="use-suggested-time"' in page
    assert "Tue–Thu 11:00 or 20:00" in page


def test_campaign_page_shows_quiet_hours_and_whether_they_hold_sending(
        admin_client_, make_campaign, contacts):
    contacts(1)
    campaign = make_campaign(time_zone="Europe/Berlin", quiet_start=time(0),
                             quiet_end=time(23, 59))
    page = admin_client_.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert "00:00–23:59 (Europe/Berlin)" in page.content.decode()


def test_quiet_hours_need_both_ends(admin_client_, template):
    response = admin_client_.post(reverse("admin:campaigns_campaign_add"), {
        "name": "Nacht", "template": template.pk, "audience": "purchases >= 0",
        "quiet_start": "21:00", "followup_after_days": 3, "ab_config": "{}"})
    assert response.status_code == 200
    assert "Quiet hours need both times" in response.content.decode()
    assert not Campaign.objects.filter(name="Nacht").exists()


def test_unknown_time_zone_is_a_form_error(admin_client_, template):
    response = admin_client_.post(reverse("admin:campaigns_campaign_add"), {
        "name": "Mond", "template": template.pk, "audience": "purchases >= 0",
        "time_zone": "Moon/Base", "followup_after_days": 3, "ab_config": "{}"})
    assert response.status_code == 200
    assert not Campaign.objects.filter(name="Mond").exists()


def test_a_launched_campaign_in_utc_can_still_be_saved(admin_client_, make_campaign, contacts,
                                                       outbox, settings):
    settings.TIME_ZONE = "UTC"
    contacts(1, phone="+12025550123", country="US")  # several zones: falls back to UTC
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.time_zone == "UTC"
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    response = admin_client_.post(url, {
        "name": campaign.name, "template": campaign.template_id, "audience": campaign.audience,
        "time_zone": "UTC", "followup_after_days": 3, "ab_config": "{}"})
    assert response.status_code == 302
