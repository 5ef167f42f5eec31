"""Tag analytics: campaign send results of a tag's holders against everybody else."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from campaigns.models import Campaign, Send, SendStatus, Template
from crm.models import Event, EventKind
from tagging.insight.selectors import analytics_subject, holder_metrics

pytestmark = pytest.mark.django_db

SENT, DELIVERED, READ, FAILED = (SendStatus.SENT, SendStatus.DELIVERED, SendStatus.READ,
                                 SendStatus.FAILED)


@pytest.fixture
def results(tag, contacts, now):
    """4 holders: 3 read (2 replied, 1 bought within 7 days), 1 failed.
    4 others: 2 delivered, 1 read without reply, 1 only sent; one bought 20 days later."""
    holders, others = contacts(4), contacts(4)
    vip = tag("VIP", holders=holders)
    template = Template.objects.create(name="t", language="de", body="Hallo")
    campaign = Campaign.objects.create(name="Herbst", template=template, audience="")
    sent_at = now - timedelta(days=30)

    def send(contact, status, replied=False):
        Send.objects.create(campaign=campaign, contact=contact, phone=contact.phone,
                            status=status, sent_at=None if status == FAILED else sent_at,
                            replied_at=sent_at + timedelta(hours=1) if replied else None)

    for contact, status, replied in zip(holders, (READ, READ, READ, FAILED),
                                        (True, True, False, False), strict=True):
        send(contact, status, replied)
    for contact, status in zip(others, (DELIVERED, DELIVERED, READ, SENT), strict=True):
        send(contact, status)
    Event.objects.create(contact=holders[0], kind=EventKind.PURCHASE, amount=Decimal("20"),
                         occurred_at=sent_at + timedelta(days=2), batch=uuid.uuid4())
    Event.objects.create(contact=others[0], kind=EventKind.PURCHASE, amount=Decimal("20"),
                         occurred_at=sent_at + timedelta(days=20), batch=uuid.uuid4())
    return vip


def test_campaign_rates_are_split_by_the_tag(results, now):
    metrics = {m.label: (m.holders, m.others)
               for m in holder_metrics(analytics_subject(tag_ids=[results.pk]), now=now)}

    assert metrics["Campaign messages sent"] == (3, 4)
    assert metrics["Campaign messages delivered"] == (0.75, 0.75)
    assert metrics["Campaign messages read"] == (1.0, round(1 / 3, 4))
    assert metrics["Replied to a campaign message"] == (round(2 / 3, 4), 0.0)
    assert metrics["Bought after a campaign message (conversion)"] == (round(1 / 3, 4), 0.0)


def test_without_sends_the_rates_are_empty_not_zero(tag, contacts, now):
    vip = tag("VIP", holders=contacts(2))
    metrics = {m.label: (m.holders, m.others)
               for m in holder_metrics(analytics_subject(tag_ids=[vip.pk]), now=now)}

    assert metrics["Campaign messages sent"] == (0, 0)
    assert metrics["Replied to a campaign message"] == (None, None)


def test_the_analytics_page_shows_the_campaign_rates(client, superuser, results):
    client.force_login(superuser)

    page = client.get(f"/admin/insight/healthreport/analytics/?tags={results.pk}")

    assert page.status_code == 200
    text = page.content.decode()
    assert "Replied to a campaign message" in text and "67 %" in text
