from __future__ import annotations

import pytest

from campaigns.backends import locmem
from campaigns.journeys.models import Journey, JourneyStep, JourneyTrigger, StepKind
from campaigns.services import template_create


@pytest.fixture(autouse=True)
def _outbox():
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def outbox():
    return locmem.outbox


@pytest.fixture
def template(db):
    return template_create(name="hallo", language="de", body="Hallo {{1}}!",
                           variables=[{"source": "first_name"}])


@pytest.fixture
def tip(db):
    return template_create(name="tipp", language="de", body="Ein Tipp, {{1}}.",
                           variables=[{"source": "first_name"}])


@pytest.fixture
def make_journey(db):
    """``make_journey(trigger, steps=[(kind, options)], **fields)``: an active journey."""

    def make(trigger=JourneyTrigger.TAG_ADDED, steps=(), **fields) -> Journey:
        from django.utils import timezone

        fields.setdefault("name", f"Journey {Journey.objects.count() + 1}")
        fields.setdefault("active", True)
        journey = Journey.objects.create(trigger=trigger, active_since=timezone.now(),
                                         **fields)
        for position, (kind, options) in enumerate(steps, start=1):
            options = dict(options)
            add, remove = options.pop("add", []), options.pop("remove", [])
            step = JourneyStep.objects.create(journey=journey, position=position, kind=kind,
                                              **options)
            step.add_tags.set(add)
            step.remove_tags.set(remove)
        return journey

    return make


SEND, WAIT, CHECK, TAGS = StepKind.SEND, StepKind.WAIT, StepKind.CHECK, StepKind.TAGS
