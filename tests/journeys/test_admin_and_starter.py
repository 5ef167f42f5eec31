"""Starter journeys, the admin (steps inline, preview, report) and the layering of the apps."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from campaigns.journeys.models import Enrollment, Journey, JourneyStep, JourneyTrigger
from campaigns.journeys.selectors import journey_preview, journey_report
from campaigns.journeys.services import journey_enroll, journeys_advance
from campaigns.models import Template, TemplateStatus
from tagging.services import tags_change
from tests.journeys.conftest import SEND, WAIT

pytestmark = pytest.mark.django_db


def test_starter_journeys_load_switched_off_and_once():
    out = StringIO()
    call_command("load_starter_journeys", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"created": 4, "existing": 0}
    journeys = {j.starter_key: j for j in Journey.objects.all()}
    assert set(journeys) == {"journey-welcome", "journey-winback", "journey-reactivation",
                             "journey-birthday"}
    assert not any(j.active for j in journeys.values())
    assert journeys["journey-welcome"].trigger_tag.name == "Neukunde"
    assert journeys["journey-winback"].trigger_tag.name == "Drohender Abwanderer"
    assert journeys["journey-reactivation"].trigger_tag.name == (
        "Historischer Bestand - Reaktivierung erforderlich")
    assert journeys["journey-birthday"].trigger == JourneyTrigger.BIRTHDAY
    assert journeys["journey-birthday"].audience == '"Geburtstag bald"'
    welcome = list(journeys["journey-welcome"].steps.values_list("kind", "wait_days"))
    assert welcome == [("send", 0), ("wait", 3), ("send", 0)]
    assert set(Template.objects.values_list("status", flat=True)) == {TemplateStatus.PENDING}
    Journey.objects.filter(starter_key="journey-welcome").update(name="Meine Begrüßung")
    out = StringIO()
    call_command("load_starter_journeys", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"created": 0, "existing": 4}


def test_preview_counts_who_would_enter_today(make_journey, make_contact, make_tag, template):
    tag = make_tag(name="Neukunde")
    journey = make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                           trigger_tag=tag)
    contacts = [make_contact() for _i in range(3)]
    tags_change(contacts=contacts, add=[tag])  # no on-commit here: nobody has entered yet
    count, sample = journey_preview(journey)
    assert count == 3 and len(sample) == 3
    journey_enroll(journey=journey, contact_ids=[contacts[0].pk])
    assert journey_preview(journey)[0] == 2


def test_report_counts_entered_steps_and_messages(make_journey, make_contact, template, tip):
    journey = make_journey(JourneyTrigger.JOINED, [
        (SEND, {"template": template}), (WAIT, {"wait_days": 3}), (SEND, {"template": tip})])
    contacts = [make_contact() for _i in range(2)]
    journey_enroll(journey=journey, contact_ids=[c.pk for c in contacts])
    journeys_advance()
    report = journey_report(journey)
    assert (report["entered"], report["active"]) == (2, 2)
    first, wait, last = report["steps"]
    assert first["reached"] == 2 and first["messages"]["recipients"] == 2
    assert wait["outcomes"] == {"waiting": 2}
    assert last["waiting_before"] == 2 and last["messages"]["recipients"] == 0
    assert report["messages"]["recipients"] == 2


def test_admin_builds_a_journey_with_steps_and_shows_its_report(client, superuser, make_tag,
                                                                template):
    tag = make_tag(name="Drohender Abwanderer")
    client.force_login(superuser)
    data = {
        "name": "Win-back", "description": "", "active": "on", "trigger": "tag_added",
        "trigger_tag": tag.pk, "trigger_event_kind": "", "audience": "",
        "exit_on_purchase": "on", "exit_on_opt_out": "on",
        "steps-TOTAL_FORMS": "2", "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "1", "steps-0-kind": "wait", "steps-0-wait_days": "0",
        "steps-0-wait_hours": "0", "steps-0-window_start": "11:00",
        "steps-0-window_end": "20:00",
        "steps-1-position": "2", "steps-1-kind": "send", "steps-1-wait_days": "0",
        "steps-1-wait_hours": "0", "steps-1-template": template.pk,
    }
    response = client.post("/admin/journeys/journey/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    journey = Journey.objects.get(name="Win-back")
    assert journey.active and journey.active_since is not None
    assert list(journey.steps.values_list("kind", flat=True)) == ["wait", "send"]
    page = client.get(f"/admin/journeys/journey/{journey.pk}/change/").content.decode()
    assert "would enter today" in page.lower() and "Entered 0" in page


def test_admin_refuses_a_send_step_without_template(client, superuser, make_tag):
    client.force_login(superuser)
    data = {
        "name": "Kaputt", "trigger": "tag_added", "trigger_tag": make_tag().pk,
        "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "0", "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000", "steps-0-position": "1", "steps-0-kind": "send",
        "steps-0-wait_days": "0", "steps-0-wait_hours": "0",
    }
    response = client.post("/admin/journeys/journey/add/", data)
    assert response.status_code == 200
    assert "A send step needs a template." in response.content.decode()
    assert not Journey.objects.exists()


def test_enrollment_admin_shows_the_outcome_log(client, superuser, make_journey, make_contact,
                                                template):
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    journey_enroll(journey=journey, contact_ids=[make_contact().pk], now=timezone.now())
    journeys_advance()
    client.force_login(superuser)
    enrollment = Enrollment.objects.get()
    page = client.get(f"/admin/journeys/enrollment/{enrollment.pk}/change/").content.decode()
    assert "message queued" in page
    assert JourneyStep.objects.count() == 1


@pytest.mark.parametrize("field", ["audience"])
def test_hostile_expressions_are_refused_in_words_never_crash(field, make_tag):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from campaigns.journeys.admin import JourneyForm, StepForm

    tag = make_tag()

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(text=st.text(max_size=60))
    def check(text):
        form = JourneyForm(data={"name": "X", "trigger": "tag_added", "trigger_tag": tag.pk,
                                 "audience": text})
        form.is_valid()  # valid or an error sentence; never an exception
        for message in form.errors.get("audience", []):
            assert message.startswith(("The expression is invalid", "Null characters"))
        step = StepForm(data={"position": 1, "kind": "check", "expression": text,
                              "wait_days": 0, "wait_hours": 0})
        step.is_valid()

    check()
