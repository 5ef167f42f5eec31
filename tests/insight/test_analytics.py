"""Tag analytics: holders vs others, per-tag breakdown, holders over time, CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from tagging.insight import usage
from tagging.insight.selectors import (
    analytics_subject,
    holder_metrics,
    holders_over_time,
    tag_breakdown,
)
from tests.factories import DimensionFactory
from tests.insight.conftest import ADDED, history

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(tag, contacts, now):
    """Make-up fans buy more: 2 holders (3 and 1 purchases), 2 others (one buyer of 1)."""
    fans = contacts(1, purchase_count=3, total_spent=Decimal("300"),
                    last_read_at=now - timedelta(days=1), last_reply_at=now - timedelta(days=1))
    fans += contacts(1, purchase_count=1, total_spent=Decimal("100"),
                     last_read_at=now - timedelta(days=40))
    others = contacts(1, purchase_count=1, total_spent=Decimal("50"))
    others += contacts(1, purchase_count=0)
    interest = DimensionFactory(name="Interesse", colour="#D6336C")
    makeup = tag("Interesse-Make-up", interest, holders=fans)
    sport = tag("Interesse-Sport", interest, holders=[fans[0], others[0]])
    return makeup, sport, fans, others


def by_label(metrics):
    return {m.label: (m.holders, m.others) for m in metrics}


def test_holders_against_everybody_else(shop, now):
    makeup, *_ = shop
    subject = analytics_subject(tag_ids=[makeup.pk])

    metrics = by_label(holder_metrics(subject, now=now))

    assert metrics["Contacts"] == (2, 2)
    assert metrics["Bought at least once (conversion)"] == (1.0, 0.5)
    assert metrics["Purchases per contact (frequency)"] == (2.0, 0.5)
    assert metrics["Revenue per contact"] == (200.0, 25.0)
    assert metrics["Revenue in all"] == (400.0, 50.0)
    assert metrics["Read a message in the last 30 days"] == (0.5, 0.0)
    assert metrics["Replied in the last 30 days"] == (0.5, 0.0)


def test_a_tag_combination_means_holding_all_of_them(shop, now):
    makeup, sport, _fans, _others = shop
    subject = analytics_subject(tag_ids=[makeup.pk, sport.pk])

    assert subject.label == "Interesse-Make-up + Interesse-Sport"
    assert by_label(holder_metrics(subject, now=now))["Contacts"] == (1, 3)


def test_a_dimension_means_holding_any_of_its_tags(shop, now):
    makeup, *_ = shop
    subject = analytics_subject(dimension_id=makeup.dimension_id)

    assert by_label(holder_metrics(subject, now=now))["Contacts"] == (3, 1)


def test_breakdown_per_tag(shop, now):
    makeup, sport, *_ = shop
    rows = {r["name"]: r for r in tag_breakdown([makeup, sport], now=now)}

    assert rows["Interesse-Make-up"]["holders"] == 2
    assert rows["Interesse-Make-up"]["conversion"] == 1.0
    assert rows["Interesse-Make-up"]["revenue"] == 400.0
    assert rows["Interesse-Sport"]["revenue_per_contact"] == 175.0


def test_holders_over_time_from_the_history(shop, now):
    makeup, _sport, fans, _others = shop
    history(fans[1], makeup, ADDED, now - timedelta(days=10))

    series = holders_over_time([makeup], now=now)["series"][0]["values"]

    assert series[-1] == 2 and series[-2] == 2 and series[-3] == 1


def test_campaign_rates_come_through_the_metric_registry(shop, now):
    makeup, *_ = shop
    usage.register_metric_provider("test-campaigns", lambda *, holders, others: [
        usage.Metric("Campaign reply rate", 0.12 if holders.count() == 2 else None, 0.03, "%")])
    try:
        metrics = by_label(holder_metrics(analytics_subject(tag_ids=[makeup.pk]), now=now))
    finally:
        usage.unregister_metric_provider("test-campaigns")
    assert metrics["Campaign reply rate"] == (0.12, 0.03)


def test_analytics_page_and_csv_export(client, superuser, shop):
    makeup, *_ = shop
    client.force_login(superuser)

    page = client.get(f"/admin/insight/healthreport/analytics/?tags={makeup.pk}")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Interesse-Make-up" in text and "<svg" in text

    response = client.get(f"/admin/insight/healthreport/analytics/export.csv?tags={makeup.pk}")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert ["comparison", "Interesse-Make-up", "Revenue in all", "400.0", "50.0"] in rows
    assert any(r[:2] == ["per_tag", "Interesse-Make-up"] for r in rows)
    assert any(r[:2] == ["holders_over_time", "Interesse-Make-up"] for r in rows)


def test_analytics_for_a_dimension_page(client, superuser, shop):
    makeup, *_ = shop
    client.force_login(superuser)
    text = client.get(
        f"/admin/insight/healthreport/analytics/?dimension={makeup.dimension_id}").content.decode()
    assert "holders of any of its tags" in text and "Interesse-Sport" in text


@pytest.mark.parametrize("query", ["tags=abc", "dimension=x", "tags=999999", "dimension=999999"])
def test_analytics_bad_input_explains_instead_of_failing(client, superuser, query):
    client.force_login(superuser)
    response = client.get(f"/admin/insight/healthreport/analytics/?{query}")
    assert response.status_code == 200
    assert 'class="errornote"' in response.content.decode()
    csv_response = client.get(f"/admin/insight/healthreport/analytics/export.csv?{query}")
    assert csv_response.status_code == 302


def test_analytics_needs_the_right_to_see_tags(client, staff_user, shop):
    client.force_login(staff_user)
    assert client.get("/admin/insight/healthreport/analytics/?tags=1").status_code == 403


def test_analytics_are_computed_once_for_page_and_export(client, superuser, shop,
                                                        django_assert_max_num_queries):
    makeup, *_ = shop
    client.force_login(superuser)
    client.get(f"/admin/insight/healthreport/analytics/?tags={makeup.pk}")

    with django_assert_max_num_queries(6):  # session, user, the subject — no aggregates
        response = client.get(
            f"/admin/insight/healthreport/analytics/export.csv?tags={makeup.pk}")
    assert b"Revenue in all" in response.content


def test_analytics_csv_escapes_a_formula_tag_name(client, superuser, tag, contacts):
    hostile = tag("=cmd|' /C calc'!A0", holders=contacts(2))
    client.force_login(superuser)
    response = client.get(f"/admin/insight/healthreport/analytics/export.csv?tags={hostile.pk}")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    names = {r[1] for r in rows if r and r[0] in ("comparison", "per_tag")}
    assert names == {"'=cmd|' /C calc'!A0"}
