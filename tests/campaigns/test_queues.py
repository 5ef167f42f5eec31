"""Three queues (sending, webhooks, long jobs), every one consumed by ``make run``'s worker;
frequent beat entries expire."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django_celery_beat.schedulers import ModelEntry

from config.celery import app
from config.dev import process_commands


def queue_of(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_webhook_processing_is_routed_to_the_webhooks_queue():
    assert queue_of("campaigns.tasks.webhooks_drain_task") == "webhooks"
    # Sending and beat's tick stay on the default queue.
    assert queue_of("campaigns.tasks.campaign_send_task") == "celery"
    assert queue_of("campaigns.tasks.campaigns_tick_task") == "celery"


@pytest.mark.parametrize("task", [
    "tagging.imports.tasks.import_analyse_task",
    "tagging.imports.tasks.import_run_task",
    "tagging.imports.tasks.import_undo_task",
    "tagging.audiences.tasks.bulk_operation_run_task",
    "tagging.rules.tasks.rule_run_task",
])
def test_long_work_is_routed_to_the_jobs_queue(task):
    assert task in app.tasks  # the route names a task that exists
    assert queue_of(task) == "jobs"


def test_short_tasks_stay_on_the_default_queue():
    for task in ("tagging.rules.tasks.rules_on_events_task",
                 "tagging.audiences.tasks.segment_counts_refresh_task",
                 "tagging.tasks.expired_assignments_remove_task"):
        assert queue_of(task) == "celery"


def test_make_run_worker_consumes_the_default_and_every_routed_queue():
    worker = process_commands("python", "8000", Path("/tmp"))["worker"]
    queues = set(worker[worker.index("-Q") + 1].split(","))
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert {"celery", "webhooks", "jobs"} <= queues and routed <= queues


def test_frequent_beat_entries_expire_in_the_database_scheduler(db):
    entries = settings.CELERY_BEAT_SCHEDULE
    frequent = {name for name, entry in entries.items() if entry["schedule"] <= 3600}
    assert {"campaigns-tick", "audiences-segment-counts"} <= frequent
    for name in frequent:
        # What beat's DatabaseScheduler makes of the setting: the tick's run expires
        # within seconds, an hourly one within the hour.
        expires = ModelEntry.from_entry(name, app=app, **entries[name]).options["expires"]
        assert expires <= entries[name]["schedule"] * 3
        assert entries[name]["options"]["expires"] == expires
    assert entries["campaigns-tick"]["options"]["expires"] <= 10


def test_eager_mode_still_processes_webhooks_inline(client, django_capture_on_commit_callbacks,
                                                    outbox, contacts, make_campaign):
    import json

    from campaigns.intake import app_secret
    from campaigns.models import Send, SendStatus, WebhookDelivery
    from campaigns.sending import campaign_send_batch
    from campaigns.services import campaign_launch
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
