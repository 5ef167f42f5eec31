"""Journeys when workers race: each due enrollment is run by one of them, each message sent once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.journeys.models import Enrollment, EnrollmentStatus, EnrollmentStep, JourneyTrigger
from campaigns.journeys.services import journey_enroll, journeys_advance
from campaigns.models import Send
from tests.conftest import needs_postgresql
from tests.journeys.conftest import SEND


def _together(target, n: int) -> list:
    start, results = threading.Barrier(n), []

    def run():
        try:
            start.wait()
            results.append(target())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_four_workers_advance_the_same_enrollments_once(make_journey, make_contact, template):
    needs_postgresql("the race needs PostgreSQL's concurrent writers")
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    now = timezone.now()
    # Entered without queueing the advance task (eager in tests): the workers below race.
    Enrollment.objects.bulk_create([Enrollment(journey=journey, contact=make_contact(),
                                               due_at=now) for _i in range(40)])
    results = _together(lambda: journeys_advance(now=now).runs, 4)
    assert sum(results) == 40
    assert Send.objects.count() == 40
    assert EnrollmentStep.objects.count() == 40
    assert set(Enrollment.objects.values_list("status", flat=True)) == {
        EnrollmentStatus.COMPLETED}


@pytest.mark.django_db(transaction=True)
def test_racing_entries_let_a_contact_in_once(make_journey, make_contact, template):
    needs_postgresql("the race needs PostgreSQL's concurrent writers")
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    contact = make_contact()
    _together(lambda: journey_enroll(journey=journey, contact_ids=[contact.pk]), 4)
    assert Enrollment.objects.filter(contact=contact).count() == 1
