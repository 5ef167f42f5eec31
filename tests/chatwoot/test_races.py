"""Chatwoot's webhooks arriving twice at once (it retries; agents click twice)."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection as db
from django.test import Client
from django.urls import reverse

from campaigns.chatwoot.models import ContactLink
from tagging.models import AssignmentHistory, TagAssignment
from tests.conftest import needs_postgresql
from tests.factories import ContactFactory


@pytest.mark.django_db(transaction=True)
def test_the_same_label_change_twice_at_once_tags_once_and_links_once(
        chatwoot, connection, agent):
    needs_postgresql("the race needs PostgreSQL's concurrent writers")
    url = reverse("chatwoot:webhook", args=[connection.webhook_token])
    for round_ in range(6):
        phone = f"+49151230001{round_:02d}"
        contact = ContactFactory(phone=phone)
        remote = chatwoot.add_contact(phone)
        body = json.dumps(chatwoot.conversation_labels_changed(
            remote, before=[], after=["sports"], agent_email="alice@example.com"))
        start, answers = threading.Barrier(2), []

        def send(body=body, start=start, answers=answers):
            client = Client()
            start.wait()
            answers.append(client.post(url, data=body,
                                       content_type="application/json").status_code)
            db.close()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == [200, 200]
        assert TagAssignment.objects.filter(contact=contact).count() == 1
        assert AssignmentHistory.objects.filter(contact=contact).count() == 1
        assert ContactLink.objects.filter(contact=contact).count() == 1
