"""A/B tests (assignment, winner, significance), follow-ups, reports."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Send, SendStatus
from campaigns.selectors import campaign_report, two_proportion_z
from campaigns.sending import campaign_send_batch
from campaigns.services import ab_decide, campaign_launch, template_create
from campaigns.tick import campaigns_tick
from crm.events import EventIn, events_record
from crm.models import Contact, EventKind


def bulk_contacts(n: int, start: int = 0) -> None:
    Contact.objects.bulk_create([Contact(phone=f"+4916{start + i:09d}", country="DE",
                                         consent_status="opted_in") for i in range(n)])


@pytest.fixture
def variant_b(db):
    return template_create(name="spring_offer_b", language="de",
                           body="Hallo {{1}}, kauf eins, nimm zwei! STOP zum Abmelden",
                           variables=["salutation_last_name"])


def ab_campaign(make_campaign, template, variant_b, **ab):
    config = {"variants": [{"key": "A", "template": template.pk},
                           {"key": "B", "template": variant_b.pk}],
              "group_size": 30, "holdout": 10, "min_audience": 100, "metric": "read",
              "window_minutes": 60, **ab}
    return make_campaign(ab_config=config)


def mark(campaign, variant: str, field: str, n: int) -> None:
    ids = Send.objects.filter(campaign=campaign, variant=variant).values_list("pk", flat=True)
    now = timezone.now()
    updates = {"read": {"status": SendStatus.READ, "delivered_at": now, "read_at": now},
               "delivered": {"status": SendStatus.DELIVERED, "delivered_at": now},
               "replied": {"replied_at": now}}[field]
    Send.objects.filter(pk__in=list(ids[:n])).update(**updates)


def test_two_proportion_z_test_matches_the_textbook():
    # 200/1000 vs 150/1000: pooled p = 0.175, z = 0.05 / 0.01699 ≈ 2.94, p ≈ 0.0033
    result = two_proportion_z(200, 1000, 150, 1000)
    assert round(result.z, 2) == 2.94 and round(result.p_value, 4) == 0.0033
    assert result.significant
    assert not two_proportion_z(52, 100, 48, 100).significant
    assert two_proportion_z(0, 0, 1, 10) is None


def test_ab_groups_are_random_equal_and_the_rest_is_held(make_campaign, template, variant_b,
                                                         outbox):
    bulk_contacts(150)
    campaign = ab_campaign(make_campaign, template, variant_b)

    snapshot = campaign_launch(campaign=campaign)
    assert snapshot.variants == {"A": 30, "B": 30, "holdout": 10, "held": 80}
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    names = [m["template"]["name"] for m in outbox]
    assert names.count("spring_offer") == 30 and names.count("spring_offer_b") == 30
    # Not random by id order: group A is not simply the 30 lowest ids.
    a_ids = sorted(Send.objects.filter(campaign=campaign, variant="A")
                   .values_list("contact_id", flat=True))
    assert a_ids != sorted(Contact.objects.values_list("pk", flat=True))[:30]


def test_winner_goes_to_the_rest_after_the_window(make_campaign, template, variant_b, outbox):
    bulk_contacts(150)
    campaign = ab_campaign(make_campaign, template, variant_b)
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    mark(campaign, "A", "delivered", 30)
    mark(campaign, "B", "delivered", 30)
    mark(campaign, "A", "read", 8)
    mark(campaign, "B", "read", 27)

    assert ab_decide(campaign=campaign) == ""  # the decision window is not over
    later = timezone.now() + timedelta(minutes=61)
    campaigns_tick(now=later)
    campaign.refresh_from_db()
    assert campaign.ab_winner == "B" and campaign.ab_summary["significant"]

    outbox.clear()
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(outbox) == 80 and {m["template"]["name"] for m in outbox} == {"spring_offer_b"}
    assert Send.objects.filter(campaign=campaign, status=SendStatus.HOLDOUT).count() == 10
    report = campaign_report(campaign)
    assert report["variants"]["B"]["read"] == 27 and "beats" in report["ab"]["note"]


def test_a_close_result_says_it_is_not_significant(make_campaign, template, variant_b):
    bulk_contacts(150)
    campaign = ab_campaign(make_campaign, template, variant_b, metric="reply")
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    mark(campaign, "A", "delivered", 30)
    mark(campaign, "B", "delivered", 30)
    mark(campaign, "A", "replied", 3)
    mark(campaign, "B", "replied", 2)

    assert ab_decide(campaign=campaign, force=True) == "A"
    campaign.refresh_from_db()
    assert not campaign.ab_summary["significant"]
    assert "not statistically significant" in campaign.ab_summary["note"]


def test_small_audiences_skip_the_ab_test(make_campaign, template, variant_b, outbox):
    bulk_contacts(20)
    snapshot = campaign_launch(campaign=ab_campaign(make_campaign, template, variant_b))
    assert snapshot.variants == {"queued": 20}


def test_follow_up_goes_to_non_repliers_after_n_days(make_campaign, template, variant_b,
                                                     contacts, outbox):
    replied, read, silent = contacts(3)
    campaign = make_campaign(followup_template=variant_b, followup_after_days=3)
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    now = timezone.now()
    Send.objects.filter(campaign=campaign, contact=replied).update(replied_at=now)
    Send.objects.filter(campaign=campaign, contact=read).update(status=SendStatus.READ,
                                                                read_at=now)
    campaigns_tick(now=now)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED

    campaigns_tick(now=now + timedelta(days=2))
    assert not campaign.followups.exists()
    # Frequency caps count the first message: it is 3 days old now.
    Send.objects.filter(campaign=campaign).update(sent_at=now - timedelta(days=3))
    campaigns_tick(now=now + timedelta(days=3, minutes=1))
    followup = Campaign.objects.get(parent=campaign)
    assert set(followup.sends.values_list("contact_id", flat=True)) == {read.pk, silent.pk}
    campaigns_tick(now=now + timedelta(days=4))
    assert Campaign.objects.filter(parent=campaign).count() == 1


def test_report_counts_rates_flags_and_conversions(make_campaign, contacts, outbox):
    people = contacts(10)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    now = timezone.now()
    sends = list(Send.objects.filter(campaign=campaign).order_by("id"))
    Send.objects.filter(pk__in=[s.pk for s in sends[:8]]).update(
        status=SendStatus.DELIVERED, delivered_at=now)
    Send.objects.filter(pk__in=[s.pk for s in sends[:4]]).update(status=SendStatus.READ,
                                                                 read_at=now)
    Send.objects.filter(pk=sends[0].pk).update(replied_at=now)
    Send.objects.filter(pk__in=[s.pk for s in sends[8:]]).update(
        status=SendStatus.FAILED, error_code=131026)
    events_record(events=[
        EventIn(kind=EventKind.PURCHASE, contact_id=people[0].pk, amount=Decimal("49.90"),
                occurred_at=now + timedelta(days=2)),
        EventIn(kind=EventKind.PURCHASE, contact_id=people[1].pk, amount=Decimal("10.00"),
                occurred_at=now + timedelta(days=9)),  # outside the 7-day window
    ])

    report = campaign_report(campaign)
    assert (report["recipients"], report["sent"], report["delivered"], report["read"],
            report["replied"]) == (10, 8, 8, 4, 1)
    assert report["failed"] == {"131026": 2}
    assert report["delivery_rate"] == 0.8 and report["read_rate"] == 0.5
    assert report["conversions"] == 1 and Decimal(report["revenue"]) == Decimal("49.90")
    assert any("Delivery under 95%" in f for f in report["flags"])
    assert any("send time" in f for f in report["flags"])
    assert any("good" in f for f in report["flags"])  # 1/8 replied
