"""The send loop's guards: before each batch, and before each claimed send."""

from __future__ import annotations

from datetime import time

import pytest

from campaigns.models import Campaign, CampaignStatus, Send, Sender, SendStatus
from campaigns.sending import (
    HALT,
    Loop,
    LoopResult,
    _claim,
    _send_claimed,
    batch_guard,
    campaign_send_batch,
    claim_hand,
    send_guard,
)
from campaigns.services import campaign_launch, template_create
from campaigns.throttle import DatabaseBucket
from crm.models import ConsentStatus, Contact


def loop_for(campaign: Campaign, batch: int = 50) -> Loop:
    # Guards read the campaign and the batch size; the sender parts are not needed.
    campaign = Campaign.objects.select_related("template").get(pk=campaign.pk)
    return Loop(campaign=campaign, templates={}, backend=None, bucket=None, batch=batch)


@pytest.fixture
def launched(contacts, make_campaign):
    contacts(3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    return campaign


# --- Before each batch ---------------------------------------------------------------------

def test_a_sending_campaign_passes_every_batch_guard(launched):
    loop = loop_for(launched)
    assert batch_guard(loop) == ""
    assert loop.limit == 50


def test_a_paused_campaign_stops_the_loop(launched):
    Campaign.objects.filter(pk=launched.pk).update(status=CampaignStatus.PAUSED)
    assert batch_guard(loop_for(launched)) == "campaign not sending"


def test_quiet_hours_stop_the_loop(launched):
    Campaign.objects.filter(pk=launched.pk).update(
        time_zone="UTC", quiet_start=time(0, 0), quiet_end=time(23, 59, 59))
    assert batch_guard(loop_for(launched)) == "quiet hours"


def test_a_stopped_number_stops_the_loop_with_its_reason(launched):
    Sender.objects.create(phone_number_id=launched.sender_id, stopped=True,
                          stopped_reason="All sending stopped: 368")
    assert batch_guard(loop_for(launched)) == "All sending stopped: 368"


def test_the_daily_budget_bounds_the_batch_then_stops_it(launched, settings):
    settings.WHATSAPP_DAILY_UNIQUE_LIMIT = 2
    loop = loop_for(launched)
    assert batch_guard(loop) == "" and loop.limit == 2

    Send.objects.filter(campaign=launched).update(status=SendStatus.SENDING)
    assert batch_guard(loop) == "daily limit"
    launched.refresh_from_db()
    assert "Daily messaging limit" in launched.status_message


# --- Before each claimed send ----------------------------------------------------------------

def claimed(campaign: Campaign):
    token, sends = _claim(campaign.pk, 50, campaign.launched_at)
    return token, sends


def test_a_claimed_send_passes_and_is_stamped_handed_when_its_slot_comes(launched):
    token, (first, *_rest) = claimed(launched)
    assert send_guard(loop_for(launched), first, token, 0) == ""
    assert Send.objects.get(pk=first.pk).handed_at is None
    assert claim_hand(first, token)
    assert Send.objects.get(pk=first.pk).handed_at is not None


def test_a_send_claimed_by_someone_else_is_not_sent(launched, outbox):
    token, (first, *_rest) = claimed(launched)
    Send.objects.filter(pk=first.pk).update(status=SendStatus.QUEUED, claim=None)
    assert not claim_hand(first, token)
    loop = loop_for(launched)
    loop.bucket = DatabaseBucket("guards", 1000)
    result = LoopResult()
    _send_claimed(loop, token, [first], result)
    assert (result.sent, result.retried) == (0, 1)
    assert outbox == []


def test_the_campaign_is_asked_again_every_tenth_send(launched):
    token, sends = claimed(launched)
    Campaign.objects.filter(pk=launched.pk).update(status=CampaignStatus.CANCELLED)
    loop = loop_for(launched)
    assert send_guard(loop, sends[0], token, 3) == ""
    assert send_guard(loop, sends[0], token, 10) == HALT


@pytest.mark.parametrize(("change", "reason"), [
    ({"consent_status": ConsentStatus.OPTED_OUT}, "opted_out"),
    ({"is_blocked": True}, "blocklisted"),
    ({"consent_status": ConsentStatus.UNKNOWN}, "no_consent"),
])
def test_a_contact_who_became_unreachable_after_launch_is_never_sent(
        outbox, launched, change, reason):
    gone = Send.objects.filter(campaign=launched).first()
    Contact.objects.filter(pk=gone.contact_id).update(**change)

    result = campaign_send_batch(campaign_id=launched.pk, max_seconds=5)

    assert (result.sent, result.skipped) == (2, 1)
    assert gone.phone.lstrip("+") not in [m["to"] for m in outbox]
    gone.refresh_from_db()
    assert gone.status == SendStatus.CANCELLED and reason in gone.error_detail
    launched.refresh_from_db()
    assert launched.status == CampaignStatus.COMPLETED


def test_utility_messages_need_no_marketing_consent_at_send_time(outbox, contacts,
                                                                 make_campaign):
    (person,) = contacts(1, consent_status=ConsentStatus.UNKNOWN)
    notice = template_create(name="order_update", language="de", category="utility",
                             body="Ihre Bestellung ist unterwegs.")
    campaign = make_campaign(template=notice)
    campaign_launch(campaign=campaign)

    assert campaign_send_batch(campaign_id=campaign.pk, max_seconds=5).sent == 1
    assert [m["to"] for m in outbox] == [person.phone.lstrip("+")]
