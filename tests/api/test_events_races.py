"""The events API and the CSV event import when input is hostile or requests race."""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.db import connection
from django.test import Client

from crm.events_import import events_import
from crm.models import Event
from tests.conftest import needs_postgresql


def test_a_csv_row_with_a_nul_fails_that_row_only(db):
    csv = ("phone,type,product,occurred_at\n"
           "+491701234567,purchase,Lippen\x00stift,2025-03-01\n"
           "+491701234567,purchase,Lippenstift,2025-02-30\n"
           "+491701234567,purchase,Lippenstift,2025-03-01\n")
    report = events_import(stream=io.StringIO(csv))
    assert (report.rows, report.stored, report.failed) == (3, 1, 2)
    assert set(report.failures) == {"bad_text", "bad_date"}
    assert "line 2: product" in report.examples["bad_text"][0]


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_with_the_same_source_id_store_it_once(make_token):
    needs_postgresql("the race needs PostgreSQL's concurrent writers")
    token = make_token(["events:write"])
    for round_ in range(8):
        batch = json.dumps([{"type": "purchase", "phone": "+491701234567", "amount": "5",
                             "source_id": f"order-{round_}"}])
        start, answers = threading.Barrier(2), []

        def send(batch=batch, start=start, answers=answers):
            client = Client()
            start.wait()
            answers.append(client.post("/api/v1/events/", data=batch,
                                       content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Bearer {token}").status_code)
            connection.close()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200, 201], answers
        assert Event.objects.filter(source_id=f"order-{round_}").count() == 1
