"""Sending and webhook metrics move when their event happens (``campaigns.metrics``)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from campaigns.backends import locmem
from campaigns.errors import ERROR_ACTIONS
from campaigns.metrics import KNOWN_CODES, code_label
from campaigns.models import Send, Sender, SendStatus, WebhookDelivery
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_launch
from campaigns.webhooks import webhooks_drain
from tests.campaigns.fake_cloud_api import status_payload

pytestmark = pytest.mark.django_db


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Moves:
    """The change of one sample between entering and leaving the block."""

    def __init__(self, name: str, **labels):
        self.name, self.labels = name, labels

    def __enter__(self):
        self.before = value(self.name, **self.labels)
        return self

    def __exit__(self, *exc):
        self.by = value(self.name, **self.labels) - self.before


def test_a_locmem_send_counts_as_sent(outbox, contacts, make_campaign):
    contacts(2)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    with Moves("tagwerk_sends_total", status="sent", error_code="") as sent:
        campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert len(outbox) == 2
    assert sent.by == 2


def test_a_refused_send_counts_with_its_error_code(outbox, contacts, make_campaign):
    bad, _good = contacts(2)
    locmem.errors[bad.phone] = [131026]
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    with Moves("tagwerk_sends_total", status="failed", error_code="131026") as failed, \
            Moves("tagwerk_sends_total", status="sent", error_code="") as sent:
        campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert Send.objects.get(contact=bad).status == SendStatus.FAILED
    assert (failed.by, sent.by) == (1, 1)


def test_a_rate_limit_refusal_counts_as_retried_with_its_code(outbox, contacts, make_campaign):
    busy, = contacts(1)
    locmem.errors[busy.phone] = [131056]
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    with Moves("tagwerk_sends_total", status="retried", error_code="131056") as retried:
        campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert retried.by == 1


def test_the_send_rate_gauges_show_a_running_loop_and_fall_to_zero_after(
        outbox, contacts, make_campaign, monkeypatch):
    contacts(3)
    campaign = make_campaign(rate_per_second=50)
    campaign_launch(campaign=campaign)
    seen = []
    original = locmem.LocmemBackend.post

    def post(self, body):  # what a scrape would see in the middle of the loop
        seen.append((value("tagwerk_send_rate_configured", sender=campaign.sender_id),
                     value("tagwerk_send_rate_achieved", sender=campaign.sender_id)))
        return original(self, body)

    monkeypatch.setattr(locmem.LocmemBackend, "post", post)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)

    configured = [c for c, _a in seen]
    assert configured == [pytest.approx(49.0)] * 3  # 50/s less the 2 % headroom
    assert [a for _c, a in seen][1:] == [pytest.approx(1.0), pytest.approx(2.0)]
    assert value("tagwerk_send_rate_configured", sender=campaign.sender_id) == 0
    assert value("tagwerk_send_rate_achieved", sender=campaign.sender_id) == 0


def test_webhook_intake_counts_stored_duplicate_and_refused(post, sent):
    payload = status_payload(sent.wamid, "delivered", sent.phone)
    with Moves("tagwerk_webhooks_received_total", outcome="stored") as stored, \
            Moves("tagwerk_webhooks_received_total", outcome="duplicate") as duplicate, \
            Moves("tagwerk_webhooks_received_total", outcome="bad_signature") as refused:
        post(payload)
        post(payload)
        post(payload, signature="sha256=" + "0" * 64)
    assert (stored.by, duplicate.by, refused.by) == (1, 1, 1)


def test_an_oversized_webhook_counts_as_too_large(client, settings):
    settings.WHATSAPP_WEBHOOK_MAX_BYTES = 10
    with Moves("tagwerk_webhooks_received_total", outcome="too_large") as large:
        response = client.post("/webhooks/whatsapp/", b"x" * 11,
                               content_type="application/json")
    assert response.status_code == 413
    assert large.by == 1


def test_status_webhooks_count_once_each_with_the_failure_code(post, sent):
    with Moves("tagwerk_send_statuses_total", status="delivered", error_code="") as delivered, \
            Moves("tagwerk_send_statuses_total", status="read", error_code="") as read:
        post(status_payload(sent.wamid, "delivered", sent.phone))
        post(status_payload(sent.wamid, "delivered", sent.phone, timestamp=1))  # again
        post(status_payload(sent.wamid, "read", sent.phone))
    assert (delivered.by, read.by) == (1, 1)


def test_a_failed_status_counts_with_its_error_code(post, sent):
    with Moves("tagwerk_send_statuses_total", status="failed", error_code="131026") as failed:
        post(status_payload(sent.wamid, "failed", sent.phone, error_code=131026))
    assert Send.objects.get(pk=sent.pk).error_code == 131026
    assert failed.by == 1


def test_a_status_of_a_message_we_did_not_send_is_not_counted(post, sent):
    with Moves("tagwerk_send_statuses_total", status="delivered", error_code="") as delivered:
        post(status_payload("wamid.someone-else", "delivered", sent.phone))
    assert delivered.by == 0


def test_a_processed_webhook_observes_its_lag(sent, django_capture_on_commit_callbacks):
    WebhookDelivery.objects.create(
        body=json.dumps(status_payload(sent.wamid, "read", sent.phone)).encode(),
        sha256="c" * 64, received_at=timezone.now() - timedelta(seconds=90))
    WebhookDelivery.objects.create(body=b"not json", sha256="d" * 64)
    with Moves("tagwerk_webhook_lag_seconds_count") as count, \
            Moves("tagwerk_webhook_lag_seconds_sum") as total, \
            Moves("tagwerk_webhook_lag_seconds_bucket", le="60.0") as within_a_minute, \
            Moves("tagwerk_webhooks_processed_total", outcome="applied") as applied, \
            Moves("tagwerk_webhooks_processed_total", outcome="set_aside") as set_aside, \
            django_capture_on_commit_callbacks(execute=True):
        assert webhooks_drain() == 2
    assert count.by == 2
    assert 90 <= total.by < 100
    assert within_a_minute.by == 1  # the fresh one; the old one waited 90 s
    assert (applied.by, set_aside.by) == (1, 1)
    assert Send.objects.get(pk=sent.pk).status == SendStatus.READ


def test_readyz_reports_sends_due_and_a_stopped_number(client, settings, contacts,
                                                        make_campaign):
    settings.HEALTH_CACHE_SECONDS = 0
    contacts(3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    Sender.objects.create(phone_number_id=campaign.sender_id, stopped=True,
                          stopped_reason="131031")

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 200  # a stopped number is an alert, not an outage
    assert body["checks"]["sending"]["values"] == {"sends_due": 3.0, "senders_stopped": 1.0}
    assert "sending" in body["failed"]
    assert "131031" not in response.content.decode()  # the reason stays in the admin


@given(st.one_of(st.none(), st.integers(), st.sampled_from(sorted(ERROR_ACTIONS))))
def test_error_code_labels_stay_a_small_set_whatever_the_code(code):
    label = code_label(code)
    assert label in {"", "other"} | {str(c) for c in KNOWN_CODES}
    assert label == ("" if code is None else str(code) if code in KNOWN_CODES else "other")


def test_an_unknown_refusal_code_counts_as_other(outbox, contacts, make_campaign):
    odd, = contacts(1)
    locmem.errors[odd.phone] = [987654]
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    with Moves("tagwerk_sends_total", status="failed", error_code="other") as other:
        campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert Send.objects.get(contact=odd).error_code == 987654  # the send keeps the exact code
    assert other.by == 1
