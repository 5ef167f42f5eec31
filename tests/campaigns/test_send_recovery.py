"""Sending after a crash, with Redis away, and after the end: nothing stuck, nothing twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.intake import app_secret
from campaigns.models import Campaign, CampaignStatus, Send, SendStatus, WebhookDelivery
from campaigns.sending import LEASE_SECONDS, _claim, campaign_send_batch, inflight_reconcile
from campaigns.services import campaign_launch
from campaigns.tasks import campaign_send_task
from campaigns.webhooks import webhooks_drain
from tests.campaigns.fake_cloud_api import sign, status_payload

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def launched(outbox, contacts, make_campaign):
    contacts(3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    return campaign


# --- A loop killed mid-send ---------------------------------------------------------------

def test_sends_claimed_by_a_killed_loop_are_queued_again_once_its_lease_is_over(
        launched, outbox):
    now = timezone.now()
    # A loop claimed a batch, then its worker was killed before it handed any to WhatsApp.
    _token, claimed = _claim(launched.pk, 50, now)
    assert len(claimed) == 3

    assert inflight_reconcile(now=now + timedelta(seconds=LEASE_SECONDS - 5)) == 0
    # No need to wait for the grace period: none of them can have reached WhatsApp.
    assert inflight_reconcile(now=now + timedelta(seconds=LEASE_SECONDS + 1)) == 3
    campaign_send_batch(campaign_id=launched.pk, max_seconds=5)

    assert sorted(m["to"] for m in outbox) == sorted(
        s.phone.lstrip("+") for s in Send.objects.filter(campaign=launched))
    assert set(Send.objects.filter(campaign=launched).values_list("attempts", flat=True)) == {1}


def test_a_send_handed_to_whatsapp_when_the_loop_died_waits_for_its_webhook(
        launched, outbox, client, settings):
    settings.WHATSAPP_INFLIGHT_GRACE_SECONDS = 600
    now = timezone.now()
    _token, (handed, *_rest) = _claim(launched.pk, 50, now)
    # Killed during the HTTP call: WhatsApp may have accepted it.
    Send.objects.filter(pk=handed.pk).update(handed_at=now)

    assert inflight_reconcile(now=now + timedelta(seconds=LEASE_SECONDS + 1)) == 2
    assert Send.objects.get(pk=handed.pk).status == SendStatus.SENDING

    body = json.dumps(status_payload("wamid.accepted", "sent", handed.phone,
                                     callback_data=f"tw:{handed.pk}")).encode()
    client.post("/webhooks/whatsapp/", body, content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256=sign(body, app_secret()))
    webhooks_drain()
    handed.refresh_from_db()
    assert (handed.status, handed.wamid) == (SendStatus.SENT, "wamid.accepted")
    campaign_send_batch(campaign_id=launched.pk, max_seconds=5)
    assert handed.phone.lstrip("+") not in [m["to"] for m in outbox]


def test_a_handed_send_with_no_webhook_is_queued_again_after_the_grace_period(launched):
    now = timezone.now()
    _token, (handed, *_rest) = _claim(launched.pk, 50, now)
    Send.objects.filter(pk=handed.pk).update(handed_at=now)
    assert inflight_reconcile(now=now + timedelta(seconds=599), grace=600) == 2
    assert inflight_reconcile(now=now + timedelta(seconds=601), grace=600) == 1
    assert Send.objects.get(pk=handed.pk).status == SendStatus.QUEUED


# --- After the end ------------------------------------------------------------------------

@pytest.fixture
def published():
    """Queue tasks on the broker (a queue of this test's own) instead of running them;
    list what was queued."""
    from config.celery import app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_default_queue")}
    app.conf.update(task_always_eager=False, task_default_queue=queue)
    app._pool = None
    app.amqp._producer_pool = None

    def names() -> list[str]:
        found = []
        with app.connection_for_read() as conn, conn.SimpleQueue(queue) as simple:
            while True:
                try:
                    message = simple.get(block=False)
                except simple.Empty:
                    return found
                found.append(message.headers["task"])
                message.ack()

    try:
        yield names
    finally:
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None


def test_a_completed_campaign_queues_no_further_send_task(launched, outbox, published):
    campaign_send_batch(campaign_id=launched.pk, max_seconds=5)
    launched.refresh_from_db()
    assert launched.status == CampaignStatus.COMPLETED
    published()  # what the launch queued

    campaign_send_task(launched.pk)  # a task still in the queue when it completed

    assert published() == []


def test_a_sending_campaign_fans_out_to_its_free_slot(launched, published):
    campaign_send_task(launched.pk)
    assert published().count("campaigns.tasks.campaign_send_task") <= 1


# --- Redis unreachable ---------------------------------------------------------------------

def test_sending_waits_with_a_reason_while_the_rate_limiters_redis_is_unreachable(
        launched, outbox, settings):
    settings.REDIS_URL = UNREACHABLE

    result = campaign_send_batch(campaign_id=launched.pk, max_seconds=5)

    assert result.stopped and outbox == []
    assert set(Send.objects.filter(campaign=launched).values_list("status", flat=True)) == {
        SendStatus.QUEUED}
    launched.refresh_from_db()
    assert launched.status == CampaignStatus.SENDING
    assert "rate limiter" in launched.status_message
    assert "resumes by itself" in launched.status_message

    settings.REDIS_URL = ""  # back (here: the embedded database bucket)
    campaign_send_batch(campaign_id=launched.pk, max_seconds=5)
    assert len(outbox) == 3
    launched.refresh_from_db()
    assert launched.status == CampaignStatus.COMPLETED
    assert "rate limiter" not in launched.status_message


def production_caches(redis_url: str) -> dict:
    """CACHES as the production settings build them for ``redis_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", "REDIS_URL": redis_url})
    code = ("import json, django; django.setup(); from django.conf import settings; "
            "print(json.dumps(settings.CACHES))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_campaign_pages_and_the_webhook_answer_while_redis_is_down(
        admin_client, launched, outbox, settings):
    campaign_send_batch(campaign_id=launched.pk, max_seconds=5)
    settings.CACHES = production_caches(UNREACHABLE)
    settings.REDIS_URL = UNREACHABLE

    listing = admin_client.get(reverse("admin:campaigns_campaign_changelist"))
    page = admin_client.get(reverse("admin:campaigns_campaign_change", args=[launched.pk]))

    assert listing.status_code == 200 and launched.name in listing.content.decode()
    assert page.status_code == 200 and 'id="campaign-report"' in page.content.decode()
    send = Send.objects.filter(campaign=launched).first()
    body = json.dumps(status_payload(send.wamid, "delivered", send.phone)).encode()
    hook = admin_client.post("/webhooks/whatsapp/", body, content_type="application/json",
                             HTTP_X_HUB_SIGNATURE_256=sign(body, app_secret()))
    assert hook.status_code == 200
    assert WebhookDelivery.objects.filter(processed_at__isnull=True).count() == 1
    assert Campaign.objects.get(pk=launched.pk).status == CampaignStatus.COMPLETED


def test_claims_from_before_a_database_restart_wait_for_the_grace_period(launched):
    """The "handed" stamp commits asynchronously: a server crash may have lost it."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("reads the PostgreSQL server's start time: runs in the PostgreSQL pass")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        started = cursor.fetchone()[0]
    before = started - timedelta(seconds=30)
    _claim(launched.pk, 50, before)
    now = timezone.now()
    assert inflight_reconcile(now=now, grace=10**9) == 0
    assert inflight_reconcile(now=now, grace=1) == 3


@pytest.fixture
def broker_down(monkeypatch):
    """Tasks are published (not run in-process) to a broker nobody answers on."""
    from config.celery import app

    monkeypatch.setenv("CELERY_BROKER_URL", UNREACHABLE)  # Celery reads it before the conf
    saved = app.conf.task_always_eager
    app.conf.task_always_eager = False
    app._pool = None
    app.amqp._producer_pool = None
    yield
    app.conf.task_always_eager = saved
    app._pool = None
    app.amqp._producer_pool = None


def test_launch_and_replay_work_while_the_broker_is_down(
        admin_client, launched, contacts, make_campaign, broker_down,
        django_capture_on_commit_callbacks):
    contacts(2)
    campaign = make_campaign()
    with django_capture_on_commit_callbacks(execute=True) as queued:
        response = admin_client.post(reverse("admin:campaigns_campaign_changelist"),
                                     {"action": "launch", "_selected_action": [campaign.pk]},
                                     follow=True)
    assert queued  # a send task was to be published
    assert response.status_code == 200
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING  # the tick sends once the broker is back

    delivery = WebhookDelivery.objects.create(body=b"{}", sha256="0" * 64,
                                              processed_at=timezone.now(), error="Broken.")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:campaigns_webhookdeadletter_changelist"),
            {"action": "replay", "_selected_action": [delivery.pk]}, follow=True)
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.processed_at is None  # waits for the next drain
