"""Frequency caps and default quiet hours edited in the admin, read by launches, triggered
sends and the pre-launch checks."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Send, SendingPolicy, SendStatus
from campaigns.policy import sending_policy
from campaigns.schedule import quiet_hours
from campaigns.services import (
    campaign_checks,
    campaign_create,
    campaign_send_triggered,
    campaign_triggered_ensure,
    template_create,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def template():
    return template_create(name="angebot", language="de", body="Hallo!")


def _sent_before(contact, template, n: int, name: str = "alt"):
    for i in range(n):
        old = Campaign.objects.create(name=f"{name} {i}", template=template, audience="")
        Send.objects.create(campaign=old, contact=contact, phone=contact.phone,
                            status=SendStatus.SENT, sent_at=timezone.now() - timedelta(hours=1))


def test_without_a_row_the_environment_holds(settings):
    settings.CAMPAIGNS_CAP_PER_DAY, settings.CAMPAIGNS_CAP_PER_WEEK = 2, 5
    policy = sending_policy()
    assert (policy.cap_per_day, policy.cap_per_week, policy.quiet_start) == (2, 5, None)


def test_the_admins_caps_decide_a_triggered_send(make_contact, template):
    contact = make_contact()
    _sent_before(contact, template, 1)
    SendingPolicy.objects.create(pk=1, cap_per_day=2, cap_per_week=5)
    campaign = campaign_triggered_ensure(name="Willkommen", template=template)
    assert campaign_send_triggered(campaign=campaign, contact=contact) == "queued"
    SendingPolicy.objects.filter(pk=1).update(cap_per_day=1)
    from campaigns.policy import sending_policy_changed

    sending_policy_changed()
    other = campaign_triggered_ensure(name="Tipp", template=template)
    assert campaign_send_triggered(campaign=other, contact=make_contact()) == "queued"
    third = campaign_triggered_ensure(name="Dritte", template=template)
    assert campaign_send_triggered(campaign=third, contact=contact) == "frequency_cap"


def test_default_quiet_hours_apply_to_campaigns_without_their_own(template):
    campaign = campaign_create(name="Ohne", template=template, audience="", time_zone="UTC")
    assert quiet_hours(campaign) is None
    SendingPolicy.objects.create(pk=1, quiet_start=time(21), quiet_end=time(8))
    from campaigns.policy import sending_policy_changed

    sending_policy_changed()
    assert str(quiet_hours(campaign)) == "21:00–08:00 (UTC)"
    own = campaign_create(name="Eigene", template=template, audience="", time_zone="UTC",
                          quiet_start=time(22), quiet_end=time(7))
    assert str(quiet_hours(own)) == "22:00–07:00 (UTC)"


def test_prelaunch_checks_say_how_many_each_cap_excludes(make_contact, make_tag, template):
    from tagging.services import tags_change

    tag = make_tag(name="Kundin")
    busy_today, busy_week, fresh = make_contact(), make_contact(), make_contact()
    tags_change(contacts=[busy_today, busy_week, fresh], add=[tag])
    _sent_before(busy_today, template, 1, "heute")
    for i in range(3):
        old = Campaign.objects.create(name=f"woche {i}", template=template, audience="")
        Send.objects.create(campaign=old, contact=busy_week, phone=busy_week.phone,
                            status=SendStatus.SENT, sent_at=timezone.now() - timedelta(days=2))
    SendingPolicy.objects.create(pk=1, cap_per_day=1, cap_per_week=3)
    campaign = campaign_create(name="Neu", template=template, audience='"Kundin"')
    [check] = [c for c in campaign_checks(campaign=campaign) if c.code == "frequency_caps"]
    assert "1 by the daily cap (at most 1 a day)" in check.message
    assert "1 by the weekly cap (at most 3 in 7 days)" in check.message


def test_admin_edits_the_single_row(client, superuser):
    client.force_login(superuser)
    response = client.get("/admin/campaigns/sendingpolicy/")
    assert response.status_code == 302 and response.url.endswith("/1/change/")
    response = client.post("/admin/campaigns/sendingpolicy/1/change/", {
        "cap_per_day": "2", "cap_per_week": "4", "quiet_start": "21:00", "quiet_end": "08:00"})
    assert response.status_code == 302
    assert sending_policy().cap_per_week == 4
    response = client.post("/admin/campaigns/sendingpolicy/1/change/", {
        "cap_per_day": "3", "cap_per_week": "2", "quiet_start": "21:00", "quiet_end": ""})
    page = response.content.decode()
    assert "Give both ends of the quiet hours" in page
    assert "The weekly cap cannot be lower than the daily cap." in page
