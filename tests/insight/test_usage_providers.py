"""What each app reports as a tag's use: such a tag is no "inactive tag" in the health report."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail

from campaigns.journeys.models import Enrollment, Journey, JourneyStep, JourneyTrigger, StepKind
from campaigns.models import Campaign, CampaignStatus, Template
from tagging.audiences.models import Segment
from tagging.insight.selectors import health_findings
from tagging.insight.services import health_report_create, health_report_send
from tagging.offers.models import Offer
from tagging.rules.models import Rule, RuleRun, RunTrigger
from tests.insight.conftest import ADDED, history

pytestmark = pytest.mark.django_db


def inactive(now) -> set[str]:
    return {f["name"] for f in health_findings(now=now)["inactive"]}


def test_a_tag_named_by_a_saved_segment_is_in_use(tag, now):
    tag("Gartenfreund")
    tag("Vergessen")
    Segment.objects.create(name="Garten", expression='"Gartenfreund" AND purchases > 0',
                           counted_at=now - timedelta(days=1))

    assert inactive(now) == {"Vergessen"}


def test_a_segment_last_counted_and_edited_long_ago_does_not_keep_a_tag(tag, now):
    tag("Gartenfreund")
    segment = Segment.objects.create(name="Garten", expression='"Gartenfreund"')
    Segment.objects.filter(pk=segment.pk).update(
        counted_at=now - timedelta(days=90), updated_at=now - timedelta(days=90))

    assert inactive(now) == {"Gartenfreund"}


def test_a_dimension_wildcard_uses_every_tag_of_the_dimension(tag, now):
    a = tag("Nord")
    tag("Süd", dimension=a.dimension)
    tag("Anderswo")
    Segment.objects.create(name="Region", expression=f'"{a.dimension.name}/*"')

    assert inactive(now) == {"Anderswo"}


def test_an_expression_that_no_longer_parses_uses_nothing(tag, now):
    tag("Gartenfreund")
    Segment.objects.create(name="Kaputt", expression='"Gartenfreund" AND (')

    assert inactive(now) == {"Gartenfreund"}


def test_an_enabled_rule_uses_the_tags_of_its_who_and_then(tag, now):
    tag("Stammkunde")
    added, removed = tag("Treue"), tag("Neukunde")
    tag("Vergessen")
    rule = Rule.objects.create(name="Treue merken", segment='"Stammkunde"')
    rule.add_tags.set([added])
    rule.remove_tags.set([removed])
    Rule.objects.filter(pk=rule.pk).update(updated_at=now - timedelta(days=90))
    RuleRun.objects.create(rule=rule, trigger=RunTrigger.SCHEDULE,
                           started_at=now - timedelta(days=1))

    assert inactive(now) == {"Vergessen"}


def test_a_disabled_rule_or_one_idle_for_long_does_not_keep_its_tags(tag, now):
    tag("Stammkunde")
    tag("Treue")
    off = Rule.objects.create(name="Aus", segment='"Stammkunde"', enabled=False)
    idle = Rule.objects.create(name="Ruhig", segment='"Treue"')
    Rule.objects.filter(pk__in=[off.pk, idle.pk]).update(updated_at=now - timedelta(days=90))
    RuleRun.objects.create(rule=idle, trigger=RunTrigger.SCHEDULE,
                           started_at=now - timedelta(days=60))

    assert inactive(now) == {"Stammkunde", "Treue"}


def test_an_offer_valid_now_uses_its_audience_tags_an_ended_one_does_not(tag, now):
    tag("VIP")
    tag("Ehemals")
    Offer.objects.create(name="Vorverkauf", slug="vorverkauf", audience='"VIP"',
                         valid_until=now + timedelta(days=3))
    Offer.objects.create(name="Alt", slug="alt", audience='"Ehemals"',
                         valid_until=now - timedelta(days=60))

    assert inactive(now) == {"Ehemals"}


def test_an_active_journey_uses_its_trigger_audience_and_step_tags(tag, now):
    trigger, step_tag = tag("Neu"), tag("Begrüßt")
    tag("Newsletter")
    tag("Käufer")
    tag("Pausiert")
    journey = Journey.objects.create(name="Willkommen", active=True, active_since=now,
                                     trigger=JourneyTrigger.TAG_ADDED, trigger_tag=trigger,
                                     audience='"Newsletter"')
    JourneyStep.objects.create(journey=journey, position=1, kind=StepKind.CHECK,
                               expression='NOT "Käufer"')
    step = JourneyStep.objects.create(journey=journey, position=2, kind=StepKind.TAGS)
    step.add_tags.set([step_tag])
    Journey.objects.create(name="Alt", active=False, trigger=JourneyTrigger.TAG_ADDED,
                           audience='"Pausiert"')

    assert inactive(now) == {"Pausiert"}


def test_campaigns_underway_or_launched_lately_use_their_audience_and_suppression(tag, now):
    for name in ("Herbst", "Abgemeldet", "Geplant", "Letztes Jahr"):
        tag(name)
    template = Template.objects.create(name="t", language="de", body="Hallo")
    Campaign.objects.create(name="Herbst", template=template, audience='"Herbst"',
                            suppression='"Abgemeldet"', status=CampaignStatus.COMPLETED,
                            launched_at=now - timedelta(days=5))
    Campaign.objects.create(name="Geplant", template=template, audience='"Geplant"',
                            status=CampaignStatus.SCHEDULED)
    Campaign.objects.create(name="Alt", template=template, audience='"Letztes Jahr"',
                            status=CampaignStatus.COMPLETED,
                            launched_at=now - timedelta(days=300))
    Campaign.objects.create(name="Entwurf", template=template, audience='"Letztes Jahr"')

    assert inactive(now) == {"Letztes Jahr"}



def test_an_inactive_journey_with_recent_entries_still_uses_its_tags(tag, contacts, now):
    trigger = tag("Neu")
    tag("Leer")
    journey = Journey.objects.create(name="Pausiert", active=False, trigger_tag=trigger,
                                     trigger=JourneyTrigger.TAG_ADDED)
    Journey.objects.create(name="Nie betreten", active=False, audience='"Leer"',
                           trigger=JourneyTrigger.TAG_ADDED)
    Enrollment.objects.create(journey=journey, contact=contacts(1)[0],
                              entered_at=now - timedelta(days=3))

    assert inactive(now) == {"Leer"}


def test_the_report_says_in_words_what_used_an_inactive_tag_last(tag, contacts, now):
    t = tag("Sommer")
    history(contacts(1)[0], t, ADDED, now - timedelta(days=45))
    report = health_report_create(now=now)

    health_report_send(report=report, recipients=["team@example.com"],
                       base_url="https://tagwerk.example.com/")

    html, _mimetype = mail.outbox[0].alternatives[0]
    assert "(applied to a contact)" in html
    assert "(applied)" not in html
