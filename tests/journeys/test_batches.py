"""Journeys advance in batches: a few statements per group of contacts at the same step, the
same outcomes as one at a time; and the "check an offer" step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.journeys.models import (
    Enrollment,
    EnrollmentStatus,
    EnrollmentStep,
    ExitReason,
    JourneyStep,
    JourneyTrigger,
    Outcome,
    StepKind,
)
from campaigns.journeys.services import journey_problems, journeys_advance
from campaigns.models import Exclusion, Send
from crm.models import ConsentStatus
from tagging.models import TagAssignment
from tagging.offers.services import offer_create
from tagging.services import tags_change
from tests.journeys.conftest import CHECK, SEND, TAGS, WAIT

pytestmark = pytest.mark.django_db

OFFER = StepKind.OFFER


def _enter(journey, contacts, now):
    Enrollment.objects.bulk_create([Enrollment(journey=journey, contact=c, due_at=now,
                                               entered_at=now) for c in contacts])


def _log(contact) -> list[tuple[int, str, str]]:
    return list(EnrollmentStep.objects.filter(enrollment__contact=contact).order_by(
        "position").values_list("position", "outcome", "detail"))


def test_a_batch_costs_the_same_few_queries_for_10_or_60_contacts(
        make_journey, make_contact, make_tag, template):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    vip, welcomed = make_tag(name="VIP"), make_tag(name="Begrüßt")
    journey = make_journey(JourneyTrigger.JOINED, [
        (CHECK, {"expression": '"VIP"'}), (TAGS, {"add": [welcomed]}),
        (SEND, {"template": template}), (WAIT, {"wait_days": 3})])
    now = timezone.now()
    queries = {}
    for size in (1, 10, 60):  # the first round also creates the step's campaign
        Enrollment.objects.all().delete()
        contacts = [make_contact() for _i in range(size)]
        tags_change(contacts=contacts, add=[vip])
        _enter(journey, contacts, now)
        with CaptureQueriesContext(connection) as captured:
            result = journeys_advance(now=now)
        queries[size] = len(captured)
        assert (result.runs, result.steps) == (size, 4 * size)
    # SQLite splits a big INSERT by its variable limit: one statement more, not 50 × 15.
    assert queries[10] <= 40 and queries[60] <= queries[10] + 2
    assert Enrollment.objects.filter(position=5, status=EnrollmentStatus.ACTIVE).count() == 60
    assert TagAssignment.objects.filter(tag=welcomed).count() == 71
    assert Send.objects.count() == 71


def test_a_batch_gives_each_contact_its_own_outcome(make_journey, make_contact, make_tag,
                                                    template, django_assert_max_num_queries):
    vip = make_tag(name="VIP")
    journey = make_journey(JourneyTrigger.JOINED, [
        (CHECK, {"expression": '"VIP"'}), (SEND, {"template": template})],
        exit_on_opt_out=True)
    now = timezone.now()
    passes, fails = make_contact(), make_contact()
    unconsented = make_contact(consent_status=ConsentStatus.UNKNOWN)
    opted_out = make_contact(consent_status=ConsentStatus.OPTED_OUT)
    tags_change(contacts=[passes, unconsented, opted_out], add=[vip])
    _enter(journey, [passes, fails, unconsented, opted_out], now)
    with django_assert_max_num_queries(45):  # one at a time: about 15 a contact, and more
        journeys_advance(now=now)
    assert [row[:2] for row in _log(passes)] == [(1, Outcome.PASSED), (2, Outcome.SENT)]
    assert _log(fails) == [(1, Outcome.EXITED, "did not match “\"VIP\"”")]
    assert [row[1:] for row in _log(unconsented)][-1] == (Outcome.NOT_SENT, "no consent")
    assert _log(opted_out) == [(1, Outcome.EXITED, "opted out or blocklisted")]
    assert list(Send.objects.values_list("contact_id", flat=True)) == [passes.pk]
    assert list(Exclusion.objects.values_list("contact_id", "reason")) == [
        (unconsented.pk, "no_consent")]
    left = dict(Enrollment.objects.values_list("contact_id", "exit_reason"))
    assert left == {passes.pk: "", fails.pk: ExitReason.CHECK_FAILED, unconsented.pk: "",
                    opted_out.pk: ExitReason.OPTED_OUT}


def test_contacts_of_different_steps_and_journeys_share_one_advance(
        make_journey, make_contact, template, tip):
    first = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    second = make_journey(JourneyTrigger.JOINED, [
        (SEND, {"template": template}), (WAIT, {"wait_days": 1}), (SEND, {"template": tip})])
    now = timezone.now()
    a, b, c = make_contact(), make_contact(), make_contact()
    _enter(first, [a], now)
    _enter(second, [b], now)
    Enrollment.objects.bulk_create([Enrollment(journey=second, contact=c, position=3,
                                               due_at=now, entered_at=now)])
    assert journeys_advance(now=now).runs == 3
    status = dict(Enrollment.objects.values_list("contact_id", "status"))
    assert status == {a.pk: EnrollmentStatus.COMPLETED, b.pk: EnrollmentStatus.ACTIVE,
                      c.pk: EnrollmentStatus.COMPLETED}
    assert sorted(Send.objects.values_list("contact_id", "campaign__template__name")) == sorted(
        [(a.pk, "hallo"), (b.pk, "hallo"), (c.pk, "tipp")])


# --- "check an offer" ----------------------------------------------------------------------

@pytest.fixture
def vip_offer(make_tag):
    make_tag(name="VIP")
    return offer_create(name="VIP-Vorverkauf", slug="vip", audience='"VIP"')


def test_offer_check_lets_eligible_contacts_on_and_others_leave_with_the_reason(
        make_journey, make_contact, template, vip_offer):
    journey = make_journey(JourneyTrigger.JOINED, [
        (OFFER, {"offer": vip_offer}), (SEND, {"template": template})])
    vip, other = make_contact(), make_contact()
    tags_change(contacts=[vip], add=vip_offer_tags(vip_offer))
    now = timezone.now()
    _enter(journey, [vip, other], now)
    journeys_advance(now=now)
    assert _log(vip) == [(1, Outcome.PASSED, "may use the offer “VIP-Vorverkauf”"),
                         (2, Outcome.SENT, "Journey “Journey 1” · step 2")]
    assert _log(other) == [(1, Outcome.EXITED, "The contact is not in the offer's audience.")]
    assert Enrollment.objects.get(contact=other).exit_reason == ExitReason.NOT_ELIGIBLE
    assert list(Send.objects.values_list("contact_id", flat=True)) == [vip.pk]


def vip_offer_tags(offer):
    from tagging.models import Tag

    return [Tag.objects.get(name="VIP")]


def test_an_expired_offer_lets_nobody_on_and_says_when_it_ended(
        make_journey, make_contact, template, vip_offer):
    ended = timezone.now() - timedelta(days=1)
    type(vip_offer).objects.filter(pk=vip_offer.pk).update(
        valid_from=ended - timedelta(days=7), valid_until=ended)
    journey = make_journey(JourneyTrigger.JOINED, [
        (OFFER, {"offer": vip_offer}), (SEND, {"template": template})])
    contact = make_contact()
    tags_change(contacts=[contact], add=vip_offer_tags(vip_offer))
    _enter(journey, [contact], timezone.now())
    journeys_advance()
    [(position, outcome, detail)] = _log(contact)
    assert (position, outcome) == (1, Outcome.EXITED)
    assert detail.startswith("The offer has expired: it ended on ")
    assert not Send.objects.exists()


def test_offer_step_without_offer_is_refused_by_the_admin_form_and_named_as_a_problem(
        make_journey, vip_offer):
    from campaigns.journeys.admin import StepForm

    journey = make_journey(JourneyTrigger.JOINED)
    form = StepForm(data={"position": 1, "kind": OFFER, "wait_days": 0, "wait_hours": 0})
    assert not form.is_valid()
    assert form.errors["offer"] == ["An offer check needs its offer."]
    form = StepForm(data={"position": 1, "kind": OFFER, "wait_days": 0, "wait_hours": 0,
                          "offer": vip_offer.pk})
    assert form.is_valid(), form.errors
    step = JourneyStep(journey=journey, position=1, kind=OFFER)
    assert journey_problems(journey, [step]) == ["Step 1 checks an offer but names none."]
