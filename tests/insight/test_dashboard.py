"""The dashboard: aggregates computed by the snapshot, the page reading only the snapshot."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from crm.models import ConsentStatus
from tagging.insight import usage
from tagging.insight.models import DashboardSnapshot
from tagging.insight.selectors import dashboard_data
from tagging.insight.services import dashboard_snapshot_refresh
from tagging.insight.tasks import dashboard_refresh_task
from tagging.models import Source
from tests.factories import DimensionFactory
from tests.insight.conftest import ADDED, REMOVED, history

pytestmark = pytest.mark.django_db


def test_contact_figures(contacts, now):
    contacts(3, consent_status=ConsentStatus.OPTED_IN)
    contacts(1, consent_status=ConsentStatus.OPTED_IN, is_blocked=True)
    contacts(1, consent_status=ConsentStatus.OPTED_OUT)
    contacts(2, created_at=now - timedelta(days=6, hours=23))
    contacts(1, created_at=now - timedelta(days=7, hours=1))

    figures = dashboard_data(now=now)["contacts"]

    assert figures["total"] == 8
    assert figures["consented"] == 3 + 2 + 1  # the factory opts in; blocked ones do not count
    assert figures["consented_share"] == 0.75
    assert figures["new_week"] == 2


def test_activity_levels_at_14_and_60_days(contacts, now):
    for days in (13, 14, 59, 60, 61):
        contacts(1, idle_days=days)

    assert dashboard_data(now=now)["activity"] == {"high": 1, "watching": 2, "churn": 2}


def test_tag_distribution_per_dimension_in_tag_colours(tag, contacts):
    people = contacts(4)
    stage = DimensionFactory(name="Kaufphase", colour="#2F9E44")
    tag("Bestellt", stage, holders=people[:3])
    tag("Bezahlt", stage, holders=people[:1], colour="#FF0000")
    tag("Alt", stage, is_archived=True)

    [dimension] = dashboard_data()["dimensions"]

    assert dimension["name"] == "Kaufphase"
    assert [(t["name"], t["holders"], t["share"], t["colour"]) for t in dimension["tags"]] == [
        ("Bestellt", 3, 0.75, "#2F9E44"), ("Bezahlt", 1, 0.25, "#FF0000")]


def test_churn_rate_trend_counts_back_from_today(tag, contacts, now):
    people = contacts(10)
    churn = tag("Drohender Abwanderer", holders=people[:4])
    # Two of today's four joined this week and last week; one who left 3 weeks ago held it.
    history(people[0], churn, ADDED, now - timedelta(days=2))
    history(people[1], churn, ADDED, now - timedelta(days=9))
    history(people[5], churn, REMOVED, now - timedelta(days=20))

    trend = dashboard_data(now=now)["churn"]

    assert trend["tags"] == ["Drohender Abwanderer"]
    holders = [p["holders"] for p in trend["points"]]
    assert len(holders) == 12
    assert holders[-1] == 4            # today
    assert holders[-2] == 3            # a week ago: before people[0] joined
    assert holders[-3] == 2            # two weeks ago: people[1] had not joined either
    assert holders[-4] == 3            # three weeks ago: people[5] still held it
    assert holders[0] == 3
    assert trend["points"][-1]["rate"] == 0.4


@override_settings(TAGWERK_INSIGHT={"CHURN_TAGS": ["Gibt es nicht"]})
def test_churn_trend_without_a_churn_tag_is_empty_not_an_error(contacts):
    contacts(2)
    trend = dashboard_data()["churn"]
    assert trend["tags"] == []
    assert {p["rate"] for p in trend["points"]} == {0}


def test_rules_panel_shows_what_rules_changed(tag, contacts, now):
    from tagging.services import tags_change

    t = tag("Hochwertiger Kunde")
    tags_change(contacts=contacts(3), add=[t], source=Source.RULE, source_ref="rule:7")

    [rules] = [p for p in dashboard_data()["panels"] if p["key"] == "rules"]

    [row] = rules["data"]["rows"]
    assert row[0] == "rule:7" and row[2:] == [3, 3, 0]


def test_registered_panels_are_computed_and_a_broken_one_is_contained(client, superuser,
                                                                      monkeypatch):
    monkeypatch.setattr(usage, "_panels", dict(usage._panels))  # the real ones come back after
    usage.register_panel(usage.Panel("campaigns", "Recent campaigns", lambda *, now: {
        "columns": ["Campaign", "Read"],
        "rows": [["Frühlingsaktion", {"text": "55 %", "band": usage.rate_band("read", 0.55)}]],
    }))
    usage.register_panel(usage.Panel("broken", "Broken", lambda *, now: 1 / 0))
    dashboard_snapshot_refresh()
    client.force_login(superuser)

    page = client.get("/admin/").content.decode()

    assert "Frühlingsaktion" in page
    assert 'class="tw-band-bad">55 %' in page
    assert "ZeroDivisionError" in page


def test_rate_bands_follow_the_source_thresholds():
    assert usage.rate_band("delivery", 0.985) == "good"
    assert usage.rate_band("delivery", 0.96) == "warn"
    assert usage.rate_band("delivery", 0.94) == "bad"
    assert usage.rate_band("read", 0.70) == "good"
    assert usage.rate_band("read", 0.59) == "bad"
    assert usage.rate_band("reply", 0.05) == "good"


def test_dashboard_page_reads_the_snapshot_with_constant_queries(client, superuser, tag,
                                                                contacts):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    people = contacts(5, idle_days=3)
    tag("Interesse-Make-up", DimensionFactory(name="Interesse", colour="#D6336C"),
        holders=people[:2])
    dashboard_snapshot_refresh()
    client.force_login(superuser)
    # The admin theme (django-admin-interface) may be created on the very first page of a
    # fresh database; that is not the dashboard's doing.
    client.get("/admin/")

    with CaptureQueriesContext(connection) as small:
        response = client.get("/admin/")

    page = response.content.decode()
    assert 'id="kpi-contacts">5<' in page
    assert "Interesse-Make-up" in page
    assert 'fill="#D6336C"' in page  # the bar in the tag's colour
    assert "<svg" in page and '<script src="http' not in page  # no CDN
    # More data does not mean more queries: the page never counts contacts itself.
    tag("Interesse-Sport", DimensionFactory(name="Sport"), holders=contacts(20))
    dashboard_snapshot_refresh()
    with CaptureQueriesContext(connection) as large:
        client.get("/admin/")
    sql = [q["sql"][:120] for q in large.captured_queries]
    assert len(large) == len(small) <= 6, sql


def test_first_visit_on_a_small_base_computes_the_snapshot(client, superuser, contacts):
    contacts(2)
    client.force_login(superuser)
    assert not DashboardSnapshot.objects.exists()

    page = client.get("/admin/").content.decode()

    assert DashboardSnapshot.objects.count() == 1
    assert 'id="kpi-contacts">2<' in page


@override_settings(TAGWERK_INSIGHT={"SYNC_DASHBOARD_MAX_CONTACTS": 1})
def test_first_visit_on_a_large_base_queues_the_snapshot(
        client, superuser, contacts, django_capture_on_commit_callbacks):
    contacts(2)
    client.force_login(superuser)

    with django_capture_on_commit_callbacks() as callbacks:
        page = client.get("/admin/").content.decode()

    assert "being prepared" in page
    assert len(callbacks) == 1


def test_refresh_button_queues_a_new_snapshot(client, superuser, contacts,
                                              django_capture_on_commit_callbacks):
    contacts(1)
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/insight/healthreport/dashboard/refresh/")
    assert DashboardSnapshot.objects.count() == 1


@override_settings(TAGWERK_INSIGHT={"KEEP_SNAPSHOTS": 2})
def test_old_snapshots_are_pruned():
    ids = [dashboard_refresh_task.delay().get() for _ in range(3)]
    assert sorted(DashboardSnapshot.objects.values_list("pk", flat=True)) == ids[1:]


def test_dashboard_shows_the_latest_health_headline(client, superuser, tag):
    from tagging.insight.services import health_report_create

    tag("Verwaist")
    report = health_report_create()
    dashboard_snapshot_refresh()
    client.force_login(superuser)

    page = client.get("/admin/").content.decode()

    assert "1 without holders" in page
    assert f"/admin/insight/healthreport/{report.pk}/change/" in page


def test_tag_names_are_escaped_in_the_charts(client, superuser, tag, contacts):
    tag("<script>alert(1)</script>", holders=contacts(1))
    dashboard_snapshot_refresh()
    client.force_login(superuser)

    page = client.get("/admin/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_staff_without_contact_rights_sees_no_dashboard(client, staff_user, contacts):
    contacts(3)
    client.force_login(staff_user)

    page = client.get("/admin/").content.decode()

    assert "tw-dashboard" not in page
    assert not DashboardSnapshot.objects.exists()
    assert client.post("/admin/insight/healthreport/dashboard/refresh/").status_code == 403
