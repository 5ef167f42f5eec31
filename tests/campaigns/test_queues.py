"""Stored webhooks are processed on their own queue; every worker we start consumes it."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from config.celery import app
from config.dev import process_commands


def queue_of(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_webhook_processing_is_routed_to_the_webhooks_queue():
    assert queue_of("campaigns.tasks.webhook_process_task") == "webhooks"
    # Sending and beat's tick stay on the default queue.
    assert queue_of("campaigns.tasks.campaign_send_task") == "celery"
    assert queue_of("campaigns.tasks.campaigns_tick_task") == "celery"


def test_make_run_worker_consumes_the_default_and_every_routed_queue():
    worker = process_commands("python", "8000", Path("/tmp"))["worker"]
    queues = set(worker[worker.index("-Q") + 1].split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert {"celery", "webhooks"} <= queues and routed <= queues


def test_eager_mode_still_processes_webhooks_inline(client, django_capture_on_commit_callbacks,
                                                    outbox, contacts, make_campaign):
    import json

    from campaigns.models import Send, SendStatus, WebhookDelivery
    from campaigns.services import campaign_launch, campaign_send_batch
    from campaigns.webhooks import app_secret
    from tests.campaigns.fake_cloud_api import sign, status_payload

    (person,) = contacts(1)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    send = Send.objects.get(campaign=campaign)
    body = json.dumps(status_payload(send.wamid, "delivered", person.phone)).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/webhooks/whatsapp/", body, content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body, app_secret()))
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().processed_at is not None
    send.refresh_from_db()
    assert send.status == SendStatus.DELIVERED
