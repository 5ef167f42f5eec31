"""The send loop against the fake Cloud API: one test per error-code path, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Alert, CampaignStatus, OptOut, Send, Sender, SendStatus
from campaigns.sending import campaign_send_batch, inflight_reconcile
from campaigns.services import (
    campaign_cancel,
    campaign_launch,
    campaign_pause,
    campaign_resume,
    sender_resume,
)
from campaigns.throttle import RedisBucket, get_bucket
from crm.models import ConsentStatus


def launch_and_send(campaign, **kwargs):
    campaign_launch(campaign=campaign)
    return campaign_send_batch(campaign_id=campaign.pk, max_seconds=5, **kwargs)


def statuses(campaign):
    return dict(Send.objects.filter(campaign=campaign).values_list("phone", "status"))


def test_every_recipient_gets_exactly_one_message_with_personal_values(
        fake_api, contacts, make_campaign):
    people = contacts(3, salutation="Frau", last_name="Chen")
    people[2].salutation = people[2].last_name = ""
    people[2].save()
    campaign = make_campaign()

    launch_and_send(campaign)

    accepted = fake_api.accepted()
    assert sorted(r["to"] for r in accepted) == sorted(p.phone.lstrip("+") for p in people)
    texts = sorted(r["body"]["template"]["components"][0]["parameters"][0]["text"]
                   for r in accepted)
    assert texts == ["Frau Chen", "Frau Chen", "Kundin/Kunde"]
    assert all(r["body"]["biz_opaque_callback_data"].startswith("tw:") for r in accepted)
    assert set(statuses(campaign).values()) == {SendStatus.SENT}
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    # Running the loop again sends nothing more.
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(fake_api.accepted()) == 3


def test_130429_slows_the_number_and_retries_the_same_message(fake_api, contacts,
                                                               make_campaign):
    contacts(1)
    fake_api.inject(130429)
    campaign = make_campaign()

    launch_and_send(campaign)
    send = Send.objects.get(campaign=campaign)
    assert send.status == SendStatus.QUEUED and send.error_code == 130429
    assert send.not_before > timezone.now()
    # One refusal is not overload: the number keeps its full rate (tests/campaigns/
    # test_throttle.py has the AIMD with a controllable clock).
    bucket = get_bucket("106540352242922")
    assert not isinstance(bucket, RedisBucket) or bucket.share() == 1.0

    Send.objects.filter(pk=send.pk).update(not_before=timezone.now())
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert Send.objects.get(pk=send.pk).status == SendStatus.SENT
    assert len(fake_api.accepted()) == 1


def test_131056_backs_off_only_that_recipient_1_4_16_64_seconds(fake_api, contacts,
                                                                 make_campaign):
    busy, other = contacts(2)
    fake_api.inject(131056, to=busy.phone, times=5)
    campaign = make_campaign()

    delays = []
    launch_and_send(campaign)
    for _ in range(4):
        send = Send.objects.get(campaign=campaign, contact=busy)
        delays.append(round((send.not_before - send.claimed_at).total_seconds()))
        Send.objects.filter(pk=send.pk).update(not_before=timezone.now())
        campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)

    assert delays == [1, 4, 16, 64]
    assert Send.objects.get(campaign=campaign, contact=other).status == SendStatus.SENT
    # The fifth refusal gives up on that recipient.
    busy_send = Send.objects.get(campaign=campaign, contact=busy)
    assert busy_send.status == SendStatus.FAILED and busy_send.error_code == 131056


def test_131048_pauses_the_campaign_and_alerts(fake_api, contacts, make_campaign):
    contacts(5)
    fake_api.inject(131048)
    campaign = make_campaign()

    launch_and_send(campaign)

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert "131048" in campaign.status_message
    assert Alert.objects.filter(campaign=campaign, code=131048).exists()
    assert fake_api.accepted() == []
    assert set(statuses(campaign).values()) == {SendStatus.QUEUED}

    campaign_resume(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(fake_api.accepted()) == 5


@pytest.mark.parametrize("code", [131026, 131047])
def test_undeliverable_fails_only_that_recipient(fake_api, contacts, make_campaign, code):
    bad, good = contacts(2)
    fake_api.inject(code, to=bad.phone)
    campaign = make_campaign()

    launch_and_send(campaign)

    failed = Send.objects.get(campaign=campaign, contact=bad)
    assert (failed.status, failed.error_code) == (SendStatus.FAILED, code)
    assert Send.objects.get(campaign=campaign, contact=good).status == SendStatus.SENT
    bad.refresh_from_db()
    assert bad.consent_status == ConsentStatus.OPTED_IN


def test_131050_fails_and_opts_the_contact_out(fake_api, contacts, make_campaign):
    stopped, _other = contacts(2)
    fake_api.inject(131050, to=stopped.phone)
    campaign = make_campaign()

    launch_and_send(campaign)

    assert Send.objects.get(campaign=campaign, contact=stopped).error_code == 131050
    stopped.refresh_from_db()
    assert stopped.consent_status == ConsentStatus.OPTED_OUT
    assert OptOut.objects.filter(contact=stopped, source="error_131050").exists()


@pytest.mark.parametrize("code", [132000, 132001])
def test_template_errors_abort_the_campaign_with_a_clear_message(fake_api, contacts,
                                                                 make_campaign, code):
    contacts(4)
    fake_api.inject(code)
    campaign = make_campaign()

    launch_and_send(campaign)

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ABORTED
    assert str(code) in campaign.status_message and "spring_offer" in campaign.status_message
    assert fake_api.accepted() == []
    assert sorted(statuses(campaign).values()) == [SendStatus.CANCELLED] * 3 + [SendStatus.FAILED]


def test_368_stops_all_sending_until_resumed(fake_api, contacts, make_campaign):
    contacts(3)
    fake_api.inject(368)
    first = make_campaign()

    launch_and_send(first)

    first.refresh_from_db()
    assert first.status == CampaignStatus.PAUSED and "368" in first.status_message
    assert Sender.objects.get(phone_number_id="106540352242922").stopped
    campaign_resume(campaign=first)
    campaign_send_batch(campaign_id=first.pk, max_seconds=30)
    assert fake_api.accepted() == []  # the number is still stopped

    sender_resume(phone_number_id="106540352242922")
    campaign_send_batch(campaign_id=first.pk, max_seconds=30)
    assert len(fake_api.accepted()) == 3


def test_5xx_is_retried_a_limited_number_of_times(fake_api, contacts, make_campaign):
    contacts(1)
    fake_api.inject(131000, times=3)
    campaign = make_campaign()

    launch_and_send(campaign)
    for _ in range(2):
        Send.objects.filter(campaign=campaign).update(not_before=timezone.now())
        campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)

    send = Send.objects.get(campaign=campaign)
    assert (send.status, send.error_code, send.attempts) == (SendStatus.FAILED, 131000, 3)
    assert len(fake_api.requests) == 3


def test_5xx_then_success_is_sent_once(fake_api, contacts, make_campaign):
    contacts(1)
    fake_api.inject(131016)
    campaign = make_campaign()

    launch_and_send(campaign)
    Send.objects.filter(campaign=campaign).update(not_before=timezone.now())
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)

    assert Send.objects.get(campaign=campaign).status == SendStatus.SENT
    assert len(fake_api.accepted()) == 1


def test_pause_resume_and_cancel(outbox, contacts, make_campaign):
    contacts(6)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)

    campaign_pause(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert outbox == []

    campaign_resume(campaign=campaign)
    Send.objects.filter(pk__in=Send.objects.filter(campaign=campaign).values("pk")[:2]).update(
        not_before=timezone.now() + timedelta(hours=1))
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(outbox) == 4

    assert campaign_cancel(campaign=campaign) == 2
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED
    Send.objects.filter(campaign=campaign).update(not_before=None)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(outbox) == 4
    assert not campaign_resume(campaign=campaign)


def test_a_claimed_send_is_never_claimed_twice(outbox, contacts, make_campaign):
    contacts(3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    # Another worker claimed one and died before calling the API.
    stuck = Send.objects.filter(campaign=campaign).first()
    Send.objects.filter(pk=stuck.pk).update(status=SendStatus.SENDING,
                                            claimed_at=timezone.now())

    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(outbox) == 2

    assert inflight_reconcile(grace=600) == 0  # within the grace period: left alone
    assert inflight_reconcile(now=timezone.now() + timedelta(minutes=11)) == 1
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    phones = Send.objects.filter(campaign=campaign).values_list("phone", flat=True)
    assert sorted(m["to"] for m in outbox) == sorted(p.lstrip("+") for p in phones)


def test_daily_unique_limit_holds_the_rest(settings, outbox, contacts, make_campaign):
    settings.WHATSAPP_DAILY_UNIQUE_LIMIT = 2
    contacts(5)
    campaign = make_campaign()

    launch_and_send(campaign)

    assert len(outbox) == 2
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    assert "Daily messaging limit" in campaign.status_message
