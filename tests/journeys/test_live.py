"""The welcome journey against a real Celery worker: an event, a rule's “Neukunde”, the
welcome sent by the sandbox sender within seconds; every step after the event runs in the worker.

PostgreSQL and Redis only (the worker is another process that must see the committed rows);
skips on SQLite, fails in CI when Redis is missing (``tests.conftest.require_service``).
"""

from __future__ import annotations

import time

import pytest

from campaigns.journeys.models import Enrollment, EnrollmentStep, Journey, Outcome
from campaigns.journeys.services import journey_activate
from campaigns.journeys.starter import journeys_load_starter
from campaigns.models import Send, SendStatus, Template, TemplateStatus
from crm.events import EventIn, events_record
from crm.models import ConsentStatus
from tagging.models import Tag, TagAssignment
from tagging.rules.models import Rule, RuleTrigger
from tagging.rules.services import rule_save
from tests.conftest import needs_postgresql, require_service
from tests.factories import ContactFactory
from tests.tagging.test_rules_live import BROKER, live_worker, redis_available

WITHIN = 15  # seconds: event → rule → tag → enrollment → step → send, each a queued task


@pytest.fixture
def worker():
    """A real worker on the "celery" queue of the test broker, seeing the test database.

    Unlike the rules' one-hop test, every hop here is queued by the worker itself (the
    rule's tag change queues the journey, the step queues the send), so the worker must
    consume the queue its own tasks go to; it is emptied first.
    """
    needs_postgresql("needs a database shared between connections")
    require_service(redis_available(), f"Redis is not reachable at {BROKER}")
    import redis

    queue = redis.Redis.from_url(BROKER)
    queue.delete("celery")
    try:
        with live_worker("celery", default_queue=False, env={
                "WHATSAPP_BACKEND": "campaigns.backends.sandbox.SandboxBackend"}) as process:
            yield process
    finally:
        queue.delete("celery")


@pytest.mark.django_db(transaction=True)
def test_an_event_tags_neukunde_and_the_welcome_is_sent_within_seconds(worker):
    journeys_load_starter(language="de")
    Template.objects.update(status=TemplateStatus.APPROVED)  # as WhatsApp Manager approves
    welcome = Journey.objects.get(starter_key="journey-welcome")
    journey_activate(journey=welcome)
    neukunde = Tag.objects.get(name="Neukunde")
    rule_save(rule=Rule(name="Neukunde beim ersten Kontakt", trigger=RuleTrigger.EVENT,
                        event_kind="interaction", segment="joined within 30d"),
              add_tags=[neukunde])
    contact = ContactFactory(first_name="Mia", consent_status=ConsentStatus.OPTED_IN)

    started = time.monotonic()
    events_record(events=[EventIn(kind="interaction", contact_id=contact.pk)])
    send = None
    while time.monotonic() - started < WITHIN:
        send = Send.objects.filter(contact=contact).first()
        if send is not None and send.status == SendStatus.SENT:
            break
        time.sleep(0.1)
    took = time.monotonic() - started

    assert TagAssignment.objects.filter(contact=contact, tag=neukunde).exists()
    enrollment = Enrollment.objects.get(journey=welcome, contact=contact)
    assert list(EnrollmentStep.objects.filter(enrollment=enrollment).values_list(
        "position", "outcome")) == [(1, Outcome.SENT), (2, Outcome.WAITING)]
    assert send is not None and send.status == SendStatus.SENT, (
        f"the welcome was not sent within {WITHIN} s (send: {send and send.status})")
    assert send.campaign.template.name == welcome.steps.get(position=1).template.name
    assert send.wamid  # the sandbox sender accepted it
    print(f"event → welcome sent: {took * 1000:.0f} ms")
