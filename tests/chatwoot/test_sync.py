"""Two-way label sync against the fake Chatwoot: Tagwerk → labels, labels → Tagwerk,
no echo, retries on 502, and an agent without the grant refused and reported."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from campaigns.chatwoot.models import ContactLink, SyncNote
from campaigns.chatwoot.services import contact_labels_push
from campaigns.chatwoot.tasks import chatwoot_labels_push_task
from tagging.admin.contacts import history_source
from tagging.models import AssignmentHistory, TagAssignment
from tagging.services import tags_change
from tests.factories import ContactFactory, UserFactory

PHONE = "+4915123000042"


@pytest.fixture
def pair(chatwoot, connection):
    """The same customer in Tagwerk and in Chatwoot (there with a label Tagwerk ignores)."""
    return ContactFactory(phone=PHONE), chatwoot.add_contact(PHONE, labels=["follow-up"])


def held(contact) -> set[str]:
    return set(TagAssignment.objects.filter(contact=contact).values_list("tag__name", flat=True))


def post_webhook(client, connection, payload):
    return client.post(reverse("chatwoot:webhook", args=[connection.webhook_token]),
                       data=json.dumps(payload), content_type="application/json")


def test_a_tag_added_in_tagwerk_becomes_a_label_of_the_chatwoot_contact(
        pair, vocabulary, chatwoot, django_capture_on_commit_callbacks):
    contact, remote = pair
    with django_capture_on_commit_callbacks(execute=True):
        tags_change(contacts=[contact], add=[vocabulary["make-up"], vocabulary["tiktok"]])

    # The synced dimension's tag travels; the unsynced one (Source channel) does not;
    # Chatwoot's own label stays.
    assert sorted(remote.labels) == ["follow-up", "make-up"]
    assert ContactLink.objects.get(contact=contact).chatwoot_id == remote.id


def test_a_tag_removed_in_tagwerk_removes_the_label_and_a_second_push_sends_nothing(
        pair, vocabulary, chatwoot, connection, django_capture_on_commit_callbacks):
    contact, remote = pair
    with django_capture_on_commit_callbacks(execute=True):
        tags_change(contacts=[contact], add=[vocabulary["make-up"], vocabulary["sports"]])
    with django_capture_on_commit_callbacks(execute=True):
        tags_change(contacts=[contact], remove=[vocabulary["sports"]])
    assert sorted(remote.labels) == ["follow-up", "make-up"]

    writes = chatwoot.label_writes
    assert contact_labels_push(connection_id=connection.pk, contact_id=contact.pk) == "unchanged"
    assert chatwoot.label_writes == writes


def test_a_label_added_in_chatwoot_by_a_granted_agent_becomes_a_tag_and_is_not_echoed(
        pair, vocabulary, chatwoot, connection, agent, client,
        django_capture_on_commit_callbacks):
    contact, remote = pair
    payload = chatwoot.conversation_labels_changed(
        remote, before=["follow-up"], after=["follow-up", "make-up", "no-such-tag"],
        agent_email="Alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(client, connection, payload)

    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    assert held(contact) == {"Make-up"}
    row = AssignmentHistory.objects.get(contact=contact)
    assert (row.actor, history_source(row)) == (agent, "manual: label set by alice in Chatwoot")
    # No echo: Chatwoot already shows the label, so nothing is sent back.
    assert chatwoot.label_writes == 0
    assert ("POST", f"/api/v1/accounts/7/contacts/{remote.id}/labels") not in chatwoot.requests


def test_a_label_removed_in_chatwoot_removes_the_tag(
        pair, vocabulary, chatwoot, connection, agent, client,
        django_capture_on_commit_callbacks):
    contact, remote = pair
    tags_change(contacts=[contact], add=[vocabulary["make-up"], vocabulary["tiktok"]])
    payload = chatwoot.conversation_labels_changed(
        remote, before=["make-up", "tiktok"], after=[], agent_email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(client, connection, payload)

    assert response.json()["outcome"] == "applied"
    # TikTok's dimension is not synced: its label means nothing to Tagwerk.
    assert held(contact) == {"TikTok"}
    assert chatwoot.label_writes == 0


def test_a_label_changed_by_an_agent_without_the_grant_is_refused_reported_and_set_back(
        pair, vocabulary, chatwoot, connection, agent, client,
        django_capture_on_commit_callbacks):
    contact, remote = pair
    remote.labels = ["follow-up", "paid"]  # what the agent did in Chatwoot
    payload = chatwoot.conversation_labels_changed(
        remote, before=["follow-up"], after=["follow-up", "paid"],
        agent_email="alice@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(client, connection, payload)

    assert response.status_code == 200
    assert response.json() == {"outcome": "refused", "detail": "Paid"}
    assert held(contact) == set()
    note = SyncNote.objects.get()
    assert (note.contact, note.agent) == (contact, "alice")
    assert "alice may not change these tags" in note.message and "Paid" in note.message
    # Chatwoot shows Tagwerk's truth again.
    assert remote.labels == ["follow-up"]


def test_a_label_change_by_an_unknown_agent_needs_the_sync_user(
        pair, vocabulary, chatwoot, connection, client, django_capture_on_commit_callbacks):
    contact, remote = pair
    payload = chatwoot.conversation_labels_changed(remote, before=[], after=["sports"],
                                                   agent_email=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(client, connection, payload).json()["outcome"] == "refused"
    assert held(contact) == set()
    assert "no sync user is set" in SyncNote.objects.get().message

    connection.sync_user = UserFactory(username="sync", is_superuser=True)
    connection.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(client, connection, payload).json()["outcome"] == "applied"
    assert held(contact) == {"Sports"}


def test_a_label_of_a_single_choice_dimension_replaces_its_rival_on_both_sides(
        pair, vocabulary, chatwoot, connection, client, django_capture_on_commit_callbacks):
    contact, remote = pair
    connection.sync_user = UserFactory(is_superuser=True)
    connection.save()
    with django_capture_on_commit_callbacks(execute=True):
        tags_change(contacts=[contact], add=[vocabulary["browsing"]])
    assert sorted(remote.labels) == ["browsing", "follow-up"]

    remote.labels = ["browsing", "follow-up", "paid"]
    payload = chatwoot.conversation_labels_changed(
        remote, before=["browsing", "follow-up"], after=remote.labels, agent_email=None)
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(client, connection, payload)

    assert held(contact) == {"Paid"}
    # The replaced tag's label is taken away in Chatwoot too (a correction, not an echo).
    assert sorted(remote.labels) == ["follow-up", "paid"]


@pytest.fixture
def eager_retries():
    """Let an eager task's ``retry()`` run the next try at once (as a worker would, later)."""
    from celery import current_app

    before = current_app.conf.task_eager_propagates
    current_app.conf.task_eager_propagates = False
    yield
    current_app.conf.task_eager_propagates = before


def test_a_push_is_retried_when_chatwoot_answers_502_or_times_out(
        pair, vocabulary, chatwoot, connection, eager_retries):
    contact, remote = pair
    tags_change(contacts=[contact], add=[vocabulary["sports"]])
    chatwoot.fail_next = [502, "timeout", 502]

    chatwoot_labels_push_task.delay(connection.pk, contact.pk)

    assert sorted(remote.labels) == ["follow-up", "sports"]
    assert len(chatwoot.requests) == 6  # 502, a timeout, 502, then search, read and write
    assert not SyncNote.objects.exists()


def test_a_push_that_keeps_failing_is_noted(pair, vocabulary, chatwoot, connection,
                                            eager_retries):
    contact, remote = pair
    tags_change(contacts=[contact], add=[vocabulary["sports"]])
    chatwoot.fail_next = [503] * 20

    chatwoot_labels_push_task.delay(connection.pk, contact.pk)

    assert remote.labels == ["follow-up"]
    assert "did not answer after 7 tries" in SyncNote.objects.get().message


def test_a_refused_token_is_noted_not_retried(pair, vocabulary, chatwoot, connection):
    contact, _remote = pair
    connection.api_access_token = "wrong"
    connection.save()
    tags_change(contacts=[contact], add=[vocabulary["sports"]])

    assert contact_labels_push(connection_id=connection.pk, contact_id=contact.pk) == "refused"
    assert len(chatwoot.requests) == 1
    assert "HTTP 401" in SyncNote.objects.get().message


def test_a_contact_unknown_to_chatwoot_is_left_alone(chatwoot, connection, vocabulary):
    contact = ContactFactory()
    tags_change(contacts=[contact], add=[vocabulary["sports"]])
    assert contact_labels_push(connection_id=connection.pk,
                               contact_id=contact.pk) == "not_in_chatwoot"
    assert chatwoot.label_writes == 0


def test_the_webhook_answers_plainly(client, connection, chatwoot):
    url = reverse("chatwoot:webhook", args=[connection.webhook_token])
    assert client.post(reverse("chatwoot:webhook", args=["nope"]), data="{}",
                       content_type="application/json").status_code == 404
    assert client.post(url, data="not json", content_type="application/json").status_code == 400
    assert client.post(url, data="[1]", content_type="application/json").status_code == 400
    assert client.post(url, data='{"event": "message_created", "id": 1}',
                       content_type="application/json").json()["outcome"] == "ignored"
    unknown = chatwoot.add_contact("+4915123000099")
    payload = chatwoot.conversation_labels_changed(unknown, before=[], after=["sports"],
                                                   agent_email=None)
    assert post_webhook(client, connection, payload).json()["outcome"] == "unknown_contact"


def test_a_contact_event_with_labels_sets_the_synced_tags_as_a_whole(
        pair, vocabulary, chatwoot, connection, client, django_capture_on_commit_callbacks):
    contact, remote = pair
    connection.sync_user = UserFactory(is_superuser=True)
    connection.save()
    tags_change(contacts=[contact], add=[vocabulary["sports"], vocabulary["tiktok"]])
    payload = {"event": "contact_updated", **remote.data(),
               "labels": ["make-up", "follow-up"], "changed_attributes": []}
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(client, connection, payload).json()["outcome"] == "applied"
    # Sports (synced, not among the labels) went; TikTok (not synced) stayed.
    assert held(contact) == {"Make-up", "TikTok"}


def test_with_a_secret_only_signed_fresh_deliveries_are_applied(
        pair, vocabulary, chatwoot, connection, agent, client):
    import hashlib
    import hmac
    import time

    contact, remote = pair
    connection.webhook_secret = "cw-secret"
    connection.save()
    url = reverse("chatwoot:webhook", args=[connection.webhook_token])
    body = json.dumps(chatwoot.conversation_labels_changed(
        remote, before=[], after=["sports"], agent_email="alice@example.com")).encode()

    def post(timestamp: int, secret: str = "cw-secret"):
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                          hashlib.sha256).hexdigest()
        return client.post(url, data=body, content_type="application/json",
                           HTTP_X_CHATWOOT_TIMESTAMP=str(timestamp),
                           HTTP_X_CHATWOOT_SIGNATURE=f"sha256={digest}")

    now = int(time.time())
    assert client.post(url, data=body, content_type="application/json").status_code == 401
    assert post(now, secret="other").status_code == 401
    assert post(now - 3600).status_code == 401   # a replay of an old delivery
    assert held(contact) == set()
    assert post(now).json()["outcome"] == "applied"
    assert held(contact) == {"Sports"}
