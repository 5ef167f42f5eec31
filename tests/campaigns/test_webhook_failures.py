"""Webhooks that cannot lose or stall: poison bodies set aside with a sentence, transient
database errors retried, each status time in its own field, the dead-letter list and replay."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns.intake import webhook_store
from campaigns.models import InboundMessage, Send, SendStatus, StatusEvent, WebhookDelivery
from campaigns.selectors import counts
from campaigns.webhooks import webhooks_drain
from tests.campaigns.fake_cloud_api import message_payload, status_payload
from tests.conftest import needs_postgresql


def store(payload: dict | bytes) -> WebhookDelivery:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return webhook_store(body=body)


def pending() -> int:
    return WebhookDelivery.objects.filter(processed_at__isnull=True).count()


# --- Poison deliveries: set aside with their reason, the rest go on ------------------------

@pytest.mark.parametrize("raw", ["999999999999999999999999999999", 10**20, 10**12, -1,
                                 "yesterday", ""])
def test_a_status_with_an_impossible_timestamp_is_set_aside_and_the_rest_are_applied(
        sent, raw):
    body = status_payload(sent.wamid, "delivered", sent.phone)
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = raw
    poison = store(body)
    after = store(status_payload(sent.wamid, "read", sent.phone))

    webhooks_drain()

    assert pending() == 0
    poison.refresh_from_db()
    assert poison.processed_at is not None
    assert "timestamp" in poison.error and "not applied" in poison.error
    after.refresh_from_db()
    assert after.error == ""
    send = Send.objects.get(pk=sent.pk)
    assert send.status == SendStatus.READ and send.delivered_at is None


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"entry": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b'{"a": ' * 100_000,
], ids=["brackets", "nested-entry", "unclosed"])
def test_deeply_nested_bodies_are_set_aside_and_do_not_stop_the_drain(sent, body):
    poison = store(body)
    after = store(status_payload(sent.wamid, "delivered", sent.phone))

    webhooks_drain()

    poison.refresh_from_db()
    assert poison.processed_at is not None and "nested" in poison.error
    after.refresh_from_db()
    assert after.processed_at is not None and after.error == ""
    assert Send.objects.get(pk=sent.pk).status == SendStatus.DELIVERED


@pytest.mark.parametrize(("body", "words"), [
    (b'{"entry": [{"changes": [{"value": {"statuses": "\xff\xfe"}}]}]}', "UTF-8"),
    (b"{not json", "not JSON"),
    (b'"just a string"', "object"),
    (b'{"entry": {"changes": []}}', "entry"),
    (b'{"entry": [{"changes": [{"value": {"statuses": [{"status": "read"}]}}]}]}',
     "message id"),
    (b'{"entry": [{"changes": [{"value": {"statuses": [{"id": "wamid.x", "status": "read", '
     b'"timestamp": "1700000000", "errors": "boom"}]}}]}]}', "errors"),
], ids=["invalid-utf8", "not-json", "not-an-object", "entry-not-a-list", "no-wamid",
        "errors-not-a-list"])
def test_the_reason_a_body_was_set_aside_is_a_sentence(db, body, words):
    delivery = store(body)
    webhooks_drain()
    delivery.refresh_from_db()
    assert delivery.processed_at is not None
    assert words in delivery.error
    assert delivery.error.endswith(".") and "Error:" not in delivery.error


def test_a_wamid_longer_than_whatsapp_sends_is_set_aside_without_failing_the_batch(sent):
    poison = store(status_payload("wamid." + "x" * 300, "delivered", sent.phone))
    store(status_payload(sent.wamid, "delivered", sent.phone))
    webhooks_drain()
    poison.refresh_from_db()
    assert "128" in poison.error
    assert Send.objects.get(pk=sent.pk).status == SendStatus.DELIVERED
    assert not StatusEvent.objects.filter(wamid__startswith="wamid.xxx").exists()


def test_a_body_with_good_and_bad_statuses_applies_the_good_ones(sent, contacts,
                                                                make_campaign):
    now = int(time.time())
    payload = status_payload(sent.wamid, "delivered", sent.phone, timestamp=now)
    items = payload["entry"][0]["changes"][0]["value"]["statuses"]
    items.append({"id": sent.wamid, "status": "read", "timestamp": "10" * 20})
    delivery = store(payload)

    webhooks_drain()

    delivery.refresh_from_db()
    assert "1 of 2" in delivery.error
    send = Send.objects.get(pk=sent.pk)
    assert send.status == SendStatus.DELIVERED
    assert int(send.delivered_at.timestamp()) == now


def test_hostile_strings_are_stored_harmlessly(sent):
    """NUL characters and lone surrogates cannot be stored by PostgreSQL as they are."""
    body = json.dumps(message_payload(sent.phone, "Hallo\u0000 \ud800 Welt",
                                      message_id="wamid.in.1", context=sent.wamid))
    bad_id = json.dumps(message_payload(sent.phone, "Hallo", message_id="wamid.in.\u0000x"))
    delivery, refused = store(body.encode()), store(bad_id.encode())

    webhooks_drain()

    delivery.refresh_from_db()
    assert delivery.processed_at is not None and delivery.error == ""
    assert Send.objects.get(pk=sent.pk).replied_at is not None
    assert InboundMessage.objects.get().text == "Hallo \ufffd Welt"
    refused.refresh_from_db()
    assert "control characters" in refused.error


# --- Each status time in its own field ---------------------------------------------------

def test_read_before_delivered_keeps_each_time_in_its_own_field(sent):
    now = int(time.time())
    store(status_payload(sent.wamid, "read", sent.phone, timestamp=now + 3))
    webhooks_drain()
    send = Send.objects.get(pk=sent.pk)
    assert send.status == SendStatus.READ
    assert int(send.read_at.timestamp()) == now + 3
    assert send.delivered_at is None  # WhatsApp has not said when it was delivered
    report = counts(Send.objects.filter(pk=sent.pk))
    assert (report["delivered"], report["read"]) == (1, 1)  # read counts as delivered

    store(status_payload(sent.wamid, "delivered", sent.phone, timestamp=now + 2))
    webhooks_drain()
    send.refresh_from_db()
    assert send.status == SendStatus.READ
    assert int(send.delivered_at.timestamp()) == now + 2
    assert int(send.read_at.timestamp()) == now + 3


def test_the_same_statuses_in_one_batch_or_many_end_the_same(sent):
    now = int(time.time())
    for status, at in (("read", 3), ("sent", 1), ("delivered", 2), ("read", 4)):
        store(status_payload(sent.wamid, status, sent.phone, timestamp=now + at))
    webhooks_drain()
    send = Send.objects.get(pk=sent.pk)
    assert send.status == SendStatus.READ
    assert [int(t.timestamp()) - now for t in (send.delivered_at, send.read_at)] == [2, 3]
    assert StatusEvent.objects.filter(wamid=sent.wamid).count() == 3


# --- Transient database errors: retried, never recorded as processed ----------------------


def inject_deadlocks(*, times: int = 1_000_000, send_id: int | None = None) -> None:
    """Make UPDATEs of campaign sends fail with a real ``deadlock_detected`` (40P01).

    A sequence counts the failures: unlike a table, it is not rolled back with them.
    """
    condition = f"NEW.id = {int(send_id)} AND " if send_id else ""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE tw_fault_seq")
        cursor.execute(f"""
            CREATE FUNCTION tw_fault() RETURNS trigger AS $$ BEGIN
                IF {condition}nextval('tw_fault_seq') <= {int(times)} THEN
                    RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        cursor.execute("CREATE TRIGGER tw_fault BEFORE UPDATE ON campaigns_send "
                       "FOR EACH ROW EXECUTE FUNCTION tw_fault()")


def stop_deadlocks() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER tw_fault ON campaigns_send")


def test_a_deadlock_is_retried_and_the_status_applied(sent):
    needs_postgresql("injects PostgreSQL error codes")
    inject_deadlocks(times=2)
    delivery = store(status_payload(sent.wamid, "delivered", sent.phone))

    webhooks_drain()

    delivery.refresh_from_db()
    assert delivery.processed_at is not None and delivery.error == ""
    assert Send.objects.get(pk=sent.pk).status == SendStatus.DELIVERED


def test_a_lasting_deadlock_on_one_send_holds_back_only_its_own_webhook(
        outbox, contacts, make_campaign):
    needs_postgresql("injects PostgreSQL error codes")
    from campaigns.sending import campaign_send_batch
    from campaigns.services import campaign_launch

    contacts(3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    stuck, *others = Send.objects.filter(campaign=campaign).order_by("pk")
    inject_deadlocks(send_id=stuck.pk)
    held = store(status_payload(stuck.wamid, "delivered", stuck.phone))
    for send in others:
        store(status_payload(send.wamid, "delivered", send.phone))

    webhooks_drain()

    assert set(Send.objects.filter(pk__in=[s.pk for s in others])
               .values_list("status", flat=True)) == {SendStatus.DELIVERED}
    held.refresh_from_db()
    assert held.processed_at is None  # never recorded as processed …
    assert held.attempts >= 1 and held.retry_at > timezone.now()
    assert "deadlock" in held.error  # … and the admin says why it waits
    assert Send.objects.get(pk=stuck.pk).status == SendStatus.SENT

    stop_deadlocks()
    WebhookDelivery.objects.filter(pk=held.pk).update(retry_at=timezone.now()
                                                      - timedelta(seconds=1))
    webhooks_drain()
    held.refresh_from_db()
    assert held.processed_at is not None and held.error == ""
    assert Send.objects.get(pk=stuck.pk).status == SendStatus.DELIVERED


# --- The dead-letter list in the admin, and replay ---------------------------------------

def test_the_dead_letter_list_shows_the_reason_and_replay_applies_a_fixed_delivery(
        admin_client, sent):
    good = status_payload(sent.wamid, "delivered", sent.phone)
    # Set aside earlier (e.g. by a bug since fixed), though its body is fine.
    delivery = store(good)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        processed_at=timezone.now(), error="Could not be applied: an earlier fault.")
    broken = store(b"{not json")
    webhooks_drain()

    url = reverse("admin:campaigns_webhookdeadletter_changelist")
    page = admin_client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "an earlier fault" in text and "not JSON" in text

    response = admin_client.post(url, {"action": "replay",
                                       "_selected_action": [delivery.pk, broken.pk]},
                                 follow=True)
    assert response.status_code == 200
    assert "2 webhooks queued again" in response.content.decode()
    webhooks_drain()
    delivery.refresh_from_db()
    assert delivery.processed_at is not None and delivery.error == ""
    assert Send.objects.get(pk=sent.pk).status == SendStatus.DELIVERED
    broken.refresh_from_db()
    assert "not JSON" in broken.error  # still broken: set aside again
    remaining = admin_client.get(url).content.decode()
    assert "an earlier fault" not in remaining and "not JSON" in remaining
