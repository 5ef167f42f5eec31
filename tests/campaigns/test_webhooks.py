"""``/webhooks/whatsapp/``: handshake, signatures, dedupe, monotonic statuses, inbound."""

from __future__ import annotations

import json
import time

import pytest

from campaigns.intake import app_secret
from campaigns.models import (
    InboundMessage,
    KeywordRule,
    OptOut,
    OptOutKeyword,
    Send,
    SendStatus,
    StatusEvent,
    WebhookDelivery,
)
from campaigns.services import campaign_launch
from crm.models import ConsentStatus, Event, EventKind
from tagging.models import TagAssignment
from tests.campaigns.fake_cloud_api import (
    message_payload,
    preference_payload,
    sign,
    status_payload,
)

URL = "/webhooks/whatsapp/"


def test_handshake_echoes_the_challenge_only_for_the_right_token(client, settings):
    settings.WHATSAPP_VERIFY_TOKEN = "meatyhamhock"
    ok = client.get(URL, {"hub.mode": "subscribe", "hub.verify_token": "meatyhamhock",
                          "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.content) == (200, b"1158201444")
    wrong = client.get(URL, {"hub.mode": "subscribe", "hub.verify_token": "nope",
                             "hub.challenge": "1158201444"})
    assert wrong.status_code == 403


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "md5=abc", "garbage"])
def test_bad_or_missing_signature_is_refused_and_changes_nothing(post, sent, signature):
    response = post(status_payload(sent.wamid, "read", sent.phone), signature=signature)
    assert response.status_code == 403
    assert WebhookDelivery.objects.count() == 0
    assert Send.objects.get(pk=sent.pk).status == SendStatus.SENT


def test_signature_is_checked_over_the_raw_body(post, sent):
    body = json.dumps(status_payload(sent.wamid, "delivered", sent.phone)).encode()
    reserialised = json.dumps(json.loads(body), indent=1).encode()
    response = post(reserialised, signature=sign(body, app_secret()))
    assert response.status_code == 403


def test_valid_status_is_applied_and_feeds_the_event_stream(post, sent):
    assert post(status_payload(sent.wamid, "delivered", sent.phone)).status_code == 200
    assert post(status_payload(sent.wamid, "read", sent.phone)).status_code == 200

    send = Send.objects.get(pk=sent.pk)
    assert send.status == SendStatus.READ and send.read_at and send.delivered_at
    kinds = set(Event.objects.filter(contact=sent.contact).values_list("kind", flat=True))
    assert {EventKind.MESSAGE_DELIVERED, EventKind.MESSAGE_READ} <= kinds
    sent.contact.refresh_from_db()
    assert sent.contact.last_read_at == send.read_at


def test_replayed_delivery_is_stored_and_processed_once(post, sent):
    payload = status_payload(sent.wamid, "delivered", sent.phone)
    assert post(payload).status_code == 200
    assert post(payload).status_code == 200  # Meta retries; an attacker replays
    assert WebhookDelivery.objects.count() == 1
    assert StatusEvent.objects.filter(wamid=sent.wamid).count() == 1
    assert Event.objects.filter(kind=EventKind.MESSAGE_DELIVERED).count() == 1


def test_duplicate_status_in_a_new_body_is_applied_once(post, sent):
    now = int(time.time())
    post(status_payload(sent.wamid, "delivered", sent.phone, timestamp=now))
    post(status_payload(sent.wamid, "delivered", sent.phone, timestamp=now + 5))
    assert WebhookDelivery.objects.count() == 2
    assert StatusEvent.objects.filter(wamid=sent.wamid, status="delivered").count() == 1


def test_out_of_order_statuses_never_move_backwards(post, sent):
    now = int(time.time())
    post(status_payload(sent.wamid, "read", sent.phone, timestamp=now + 3))
    post(status_payload(sent.wamid, "delivered", sent.phone, timestamp=now + 2))
    post(status_payload(sent.wamid, "sent", sent.phone, timestamp=now + 1))

    send = Send.objects.get(pk=sent.pk)
    assert send.status == SendStatus.READ
    # Each status keeps its own time: the late "delivered" fills its field, "read" stays.
    assert int(send.delivered_at.timestamp()) == now + 2
    assert int(send.read_at.timestamp()) == now + 3
    post(status_payload(sent.wamid, "failed", sent.phone, error_code=131026))
    assert Send.objects.get(pk=sent.pk).status == SendStatus.READ


def test_failed_is_final(post, sent):
    post(status_payload(sent.wamid, "failed", sent.phone, error_code=131026))
    post(status_payload(sent.wamid, "delivered", sent.phone))
    send = Send.objects.get(pk=sent.pk)
    assert (send.status, send.error_code) == (SendStatus.FAILED, 131026)


def test_failed_131050_webhook_opts_the_contact_out(post, sent):
    post(status_payload(sent.wamid, "failed", sent.phone, error_code=131050))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_OUT


def test_a_webhook_that_beats_the_wamid_write_finds_the_send_by_callback_data(
        post, outbox, contacts, make_campaign):
    contacts(1)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    send = Send.objects.get(campaign=campaign)
    # The worker died after the API accepted the message, before writing the wamid.
    Send.objects.filter(pk=send.pk).update(status=SendStatus.SENDING)
    post(status_payload("wamid.lost", "delivered", send.phone, callback_data=f"tw:{send.pk}"))
    send.refresh_from_db()
    assert (send.status, send.wamid) == (SendStatus.DELIVERED, "wamid.lost")


@pytest.mark.parametrize("word", ["STOP", "stop", "Stopp", "ABMELDEN", "Unsubscribe",
                                  "退订", "取消订阅", " STOP! "])
def test_opt_out_keywords_in_each_language(post, sent, word):
    post(message_payload(sent.phone, word, message_id=f"wamid.in.{word}",
                         context=sent.wamid))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_OUT
    entry = OptOut.objects.get(contact=sent.contact)
    assert entry.source == "keyword"
    assert InboundMessage.objects.get(contact=sent.contact).action.endswith("opted out")


@pytest.mark.parametrize("text", ["Please stop sending me those prices? no, stop joking",
                                  "stop it", "Ich will mich nicht abmelden"])
def test_keywords_inside_a_longer_message_do_not_opt_out(post, sent, text):
    post(message_payload(sent.phone, text, message_id="wamid.in.1"))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_IN


def test_opt_out_keywords_are_configurable(post, sent):
    OptOutKeyword.objects.create(word="Keine Werbung")
    OptOutKeyword.objects.filter(word="STOP").update(active=False)
    post(message_payload(sent.phone, "STOP", message_id="wamid.in.1"))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_IN
    post(message_payload(sent.phone, "keine werbung", message_id="wamid.in.2"))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_OUT


def test_a_stop_button_tap_opts_out(post, sent):
    post(message_payload(sent.phone, "Stop", message_id="wamid.in.b", kind="button",
                         context=sent.wamid))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_OUT


def test_reply_is_attributed_and_updates_facts_and_keyword_tags(post, sent, make_tag):
    tag = make_tag(name="Interesse Produkt A")
    KeywordRule.objects.create(name="Produkt A", keywords="produkt a, product a", tag=tag)
    post(message_payload(sent.phone, "Gibt es Produkt A auch in Blau?", message_id="wamid.in.1",
                         context=sent.wamid))
    post(message_payload(sent.phone, "Gibt es Produkt A auch in Blau?", message_id="wamid.in.1",
                         context=sent.wamid))  # delivered twice

    send = Send.objects.get(pk=sent.pk)
    assert send.replied_at is not None
    inbound = InboundMessage.objects.get()
    assert inbound.send_id == send.pk
    assert TagAssignment.objects.filter(contact=sent.contact, tag=tag).exists()
    sent.contact.refresh_from_db()
    assert sent.contact.last_reply_at == send.replied_at
    assert sent.contact.last_interaction_at == send.replied_at
    assert Event.objects.filter(kind=EventKind.MESSAGE_REPLIED).count() == 1


def test_user_preferences_stop_and_resume(post, sent):
    post(preference_payload(sent.phone, "stop"))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_OUT
    post(preference_payload(sent.phone, "resume") | {"object": "whatsapp_business_account"})
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_IN


def test_resume_does_not_undo_a_keyword_opt_out(post, sent):
    post(message_payload(sent.phone, "STOP", message_id="wamid.in.1"))
    post(preference_payload(sent.phone, "resume"))
    sent.contact.refresh_from_db()
    assert sent.contact.consent_status == ConsentStatus.OPTED_OUT


def test_malformed_json_with_a_valid_signature_is_acknowledged_and_logged(db, post):
    response = post(b"{not json")
    assert response.status_code == 200
    assert "The body is not JSON" in WebhookDelivery.objects.get().error


def test_a_burst_is_applied_by_one_drain_in_order_and_a_bad_body_does_not_block_it(
        post, sent):
    """While a drain is queued, webhooks are only stored; the drain applies them all."""
    from django.core.cache import cache

    from campaigns.intake import DRAIN_FLAG
    from campaigns.tasks import campaigns_tick_task
    from campaigns.webhooks import webhooks_drain

    cache.set(DRAIN_FLAG, 1)  # as if a drain task were waiting in the queue
    for status in ("sent", "delivered", "read"):
        assert post(status_payload(sent.wamid, status, sent.phone)).status_code == 200
    assert post(b"{not json").status_code == 200  # signed, stored, fails when applied
    assert WebhookDelivery.objects.filter(processed_at__isnull=True).count() == 4
    sent.refresh_from_db()
    assert sent.status == SendStatus.SENT  # nothing applied yet

    assert webhooks_drain(batch=2) == 4
    sent.refresh_from_db()
    assert sent.status == SendStatus.READ
    assert cache.get(DRAIN_FLAG) is None  # the next webhook queues a drain again
    failed = WebhookDelivery.objects.exclude(error="")
    assert [d.error.split(" (")[0] for d in failed] == ["The body is not JSON"]
    assert webhooks_drain() == 0  # nothing twice

    # A webhook whose drain never came is picked up by beat's tick.
    cache.set(DRAIN_FLAG, 1)
    post(status_payload("wamid.someone-else", "delivered", sent.phone))
    assert WebhookDelivery.objects.filter(processed_at__isnull=True).count() == 1
    campaigns_tick_task()
    assert WebhookDelivery.objects.filter(processed_at__isnull=True).count() == 0


def test_no_requeue_while_older_webhooks_wait(sent):
    """A backlog of stored webhooks may hold the "sent" that adopts a send in flight."""
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.sending import inflight_reconcile

    now = timezone.now()
    Send.objects.filter(pk=sent.pk).update(status=SendStatus.SENDING, wamid="",
                                           claimed_at=now - timedelta(hours=1),
                                           handed_at=now - timedelta(hours=1))
    WebhookDelivery.objects.create(body=b"{}", sha256="x" * 64,
                                   received_at=now - timedelta(seconds=30))
    assert inflight_reconcile(now=now, grace=60) == 0
    WebhookDelivery.objects.update(processed_at=now)
    assert inflight_reconcile(now=now, grace=60) == 1
    sent.refresh_from_db()
    assert sent.status == SendStatus.QUEUED
