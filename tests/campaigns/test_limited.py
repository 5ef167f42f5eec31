"""131049 (WhatsApp's per-user marketing limit): limited now, retried a day later by beat."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import CampaignStatus, Send, SendStatus
from campaigns.selectors import campaign_report
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_cancel, campaign_launch
from campaigns.tick import campaigns_tick
from campaigns.webhooks import payload_apply
from tests.campaigns.fake_cloud_api import status_payload


def send_now(campaign):
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)


def test_131049_limits_the_recipient_and_beat_retries_a_day_later(
        fake_api, contacts, make_campaign):
    limited, other = contacts(2)
    fake_api.inject(131049, to=limited.phone)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    send_now(campaign)

    send = Send.objects.get(campaign=campaign, contact=limited)
    assert (send.status, send.error_code, send.deferrals) == (SendStatus.LIMITED, 131049, 1)
    assert send.not_before > timezone.now() + timedelta(hours=23)
    assert Send.objects.get(campaign=campaign, contact=other).status == SendStatus.SENT
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING  # waits for the retry
    report = campaign_report(campaign)
    assert report["limited"] == 1 and any("131049" in f for f in report["flags"])
    json.dumps(report)  # the report stays JSON (campaign_report --json)

    # Nothing happens before the retry time; beat's tick queues it once due.
    assert campaigns_tick(now=timezone.now() + timedelta(hours=1)) == []
    later = timezone.now() + timedelta(hours=25)
    assert campaigns_tick(now=later) == [campaign.pk]
    send_now(campaign)
    send.refresh_from_db()
    assert send.status == SendStatus.SENT
    assert [r["to"] for r in fake_api.accepted()].count(limited.phone.lstrip("+")) == 1
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED


def test_131049_fails_the_recipient_after_two_retries(fake_api, contacts, make_campaign,
                                                      settings):
    settings.CAMPAIGNS_LIMITED_RETRIES = 2
    (person,) = contacts(1)
    fake_api.inject(131049, to=person.phone, times=3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    send_now(campaign)
    campaigns_tick(now=timezone.now() + timedelta(days=1, hours=1))
    send_now(campaign)
    # The second wait is twice as long.
    assert Send.objects.get(campaign=campaign).not_before > timezone.now() + timedelta(hours=47)
    campaigns_tick(now=timezone.now() + timedelta(days=2, hours=1))
    send_now(campaign)
    send = Send.objects.get(campaign=campaign)
    assert (send.status, send.error_code, send.deferrals) == (SendStatus.FAILED, 131049, 2)
    assert campaign_report(campaign)["failed"] == {"131049": 1}
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED


def test_131049_status_webhook_defers_a_sent_message_and_it_is_sent_again(
        outbox, contacts, make_campaign):
    (person,) = contacts(1)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    send_now(campaign)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    send = Send.objects.get(campaign=campaign)
    old = send.wamid
    failed = status_payload(old, "failed", person.phone, callback_data=f"tw:{send.pk}",
                            error_code=131049)

    payload_apply(payload=failed)

    send.refresh_from_db()
    assert (send.status, send.error_code) == (SendStatus.LIMITED, 131049)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING and campaign.finished_at is None

    campaigns_tick(now=timezone.now() + timedelta(hours=25))
    send.refresh_from_db()
    assert send.status == SendStatus.QUEUED and send.wamid == ""
    # A late copy of the old message's webhooks neither limits nor adopts the queued send.
    payload_apply(payload=failed)
    payload_apply(payload=status_payload(old, "delivered", person.phone,
                                         callback_data=f"tw:{send.pk}"))
    send.refresh_from_db()
    assert send.status == SendStatus.QUEUED and send.wamid == ""

    send_now(campaign)
    send.refresh_from_db()
    assert send.status == SendStatus.SENT and send.wamid not in ("", old)
    assert len(outbox) == 2


@pytest.mark.parametrize("code", [131026])
def test_other_failures_by_webhook_stay_final(outbox, contacts, make_campaign, code):
    (person,) = contacts(1)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    send_now(campaign)
    send = Send.objects.get(campaign=campaign)
    payload_apply(payload=status_payload(send.wamid, "failed", person.phone, error_code=code))
    send.refresh_from_db()
    assert send.status == SendStatus.FAILED


def test_cancel_also_cancels_limited_recipients(fake_api, contacts, make_campaign):
    (person,) = contacts(1)
    fake_api.inject(131049, to=person.phone)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    send_now(campaign)
    campaign_cancel(campaign=campaign)
    assert Send.objects.get(campaign=campaign).status == SendStatus.CANCELLED
    campaigns_tick(now=timezone.now() + timedelta(days=2))
    assert Send.objects.get(campaign=campaign).status == SendStatus.CANCELLED
