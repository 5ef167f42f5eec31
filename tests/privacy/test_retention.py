"""Retention: each kind of data is pruned after its period, exactly at the boundary."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from campaigns.models import InboundMessage, StatusEvent, WebhookDelivery
from crm.models import Event, EventKind, RetentionPeriod
from crm.privacy import retention_prune
from crm.tasks import retention_prune_task
from tagging.imports.models import ConsentBasis, ImportJob
from tests.factories import ContactFactory

NOW = timezone.now().replace(microsecond=0)
SECOND = timedelta(seconds=1)


def _ages(days: int) -> tuple:
    """(one second inside the period, one second outside it)."""
    edge = NOW - timedelta(days=days)
    return edge + SECOND, edge - SECOND


@pytest.fixture
def contact(db):
    return ContactFactory()


def test_webhook_bodies_go_a_period_after_processing(contact, settings):
    inside, outside = _ages(settings.PRIVACY_RETENTION_DAYS["webhook_bodies"])
    kept = WebhookDelivery.objects.create(body=b"{}", sha256="a", processed_at=inside)
    waiting = WebhookDelivery.objects.create(body=b"{}", sha256="b", received_at=outside)
    WebhookDelivery.objects.create(body=b"{}", sha256="c", processed_at=outside)
    counts, more = retention_prune(now=NOW, keys=["webhook_bodies"])
    assert (counts, more) == ({"webhook_bodies": 1}, False)
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {kept.pk, waiting.pk}


def test_inbound_texts_are_emptied_and_the_messages_stay(contact, settings):
    inside, outside = _ages(settings.PRIVACY_RETENTION_DAYS["inbound_texts"])
    for message_id, at in (("in", inside), ("out", outside)):
        InboundMessage.objects.create(message_id=message_id, contact=contact, kind="text",
                                      text="Meine Adresse ist …", occurred_at=at,
                                      payload={"from": "49151"})
    retention_prune(now=NOW, keys=["inbound_texts"])
    texts = dict(InboundMessage.objects.values_list("message_id", "text"))
    assert texts == {"in": "Meine Adresse ist …", "out": ""}
    assert InboundMessage.objects.get(message_id="out").payload == {}


def test_events_and_status_events_go_after_their_periods(contact, settings):
    inside, outside = _ages(settings.PRIVACY_RETENTION_DAYS["events"])
    for at in (inside, outside):
        Event.objects.create(contact=contact, kind=EventKind.INTERACTION, occurred_at=at,
                             batch="00000000-0000-0000-0000-000000000000")
    inside_s, outside_s = _ages(settings.PRIVACY_RETENTION_DAYS["status_events"])
    for wamid, at in (("in", inside_s), ("out", outside_s)):
        StatusEvent.objects.create(wamid=wamid, status="read", occurred_at=at, received_at=at)
    counts, _ = retention_prune(now=NOW, keys=["events", "status_events"])
    assert counts == {"events": 1, "status_events": 1}
    assert list(Event.objects.values_list("occurred_at", flat=True)) == [inside]
    assert list(StatusEvent.objects.values_list("wamid", flat=True)) == ["in"]


def test_import_files_and_failed_rows_files_go_and_the_reports_stay(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    inside, outside = _ages(settings.PRIVACY_RETENTION_DAYS["import_files"])
    jobs = {}
    for name, at in (("inside", inside), ("outside", outside)):
        job = ImportJob(consent_basis=ConsentBasis.OPTED_IN, finished_at=at, created=3,
                        preview={"rows": [{"cells": ["+4915123000001"]}]})
        job.file.save(f"{name}.csv", ContentFile(b"phone\n+4915123000001\n"), save=False)
        job.failed_rows.save(f"{name}-failed.csv", ContentFile(b"phone\n0\n"), save=False)
        job.save()
        jobs[name] = job
    paths = {name: (Path(j.file.path), Path(j.failed_rows.path)) for name, j in jobs.items()}
    counts, _ = retention_prune(now=NOW, keys=["import_files", "failed_row_files"])
    assert counts == {"import_files": 1, "failed_row_files": 1}
    assert all(p.exists() for p in paths["inside"])
    assert not any(p.exists() for p in paths["outside"])
    gone = ImportJob.objects.get(pk=jobs["outside"].pk)
    assert (gone.file.name, gone.failed_rows.name, gone.preview["rows"], gone.created) == (
        "", "", [], 3)


def test_the_admin_period_wins_over_the_setting_and_empty_keeps_forever(contact):
    old = NOW - timedelta(days=40)
    Event.objects.create(contact=contact, kind=EventKind.INTERACTION, occurred_at=old,
                         batch="00000000-0000-0000-0000-000000000000")
    RetentionPeriod.objects.create(key="events", days=None)
    assert retention_prune(now=NOW, keys=["events"])[0] == {}
    RetentionPeriod.objects.filter(key="events").update(days=30)
    assert retention_prune(now=NOW, keys=["events"])[0] == {"events": 1}


def test_pruning_runs_in_batches_and_logs_its_counts(contact, caplog):
    old = NOW - timedelta(days=800)
    Event.objects.bulk_create([Event(contact=contact, kind=EventKind.INTERACTION,
                                     occurred_at=old, batch="00000000-0000-0000-0000-000000000000")
                               for _ in range(25)])
    with caplog.at_level(logging.INFO, logger="crm.privacy"):
        counts, more = retention_prune(now=NOW, batch=10, keys=["events"])
    assert (counts, more) == ({"events": 25}, False)
    assert "'events': 25" in caplog.text


def test_a_run_out_of_time_queues_a_successor(contact, monkeypatch):
    calls = []
    monkeypatch.setattr("crm.tasks.retention_prune",
                        lambda: (calls.append(1), ({}, len(calls) < 3))[1])
    retention_prune_task.delay()
    assert len(calls) == 3
