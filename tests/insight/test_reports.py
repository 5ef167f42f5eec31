"""Report history, week-to-week comparison, the mail, the beat entry, the command, the admin."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import override_settings
from django_celery_beat.models import PeriodicTask

from tagging.insight.models import HealthReport, ReportTrigger
from tagging.insight.selectors import report_comparison, report_previous
from tagging.insight.services import (
    SleepingVipsError,
    health_report_create,
    health_report_send,
    sleeping_vips_move,
)
from tagging.insight.tasks import health_report_task
from tagging.models import AssignmentHistory, Source, TagAssignment
from tagging.permissions import TagPermissionDenied
from tagging.services import operation_undo
from tests.factories import DimensionFactory

pytestmark = pytest.mark.django_db


def test_reports_are_kept_and_compared_week_to_week(tag, contacts, now):
    orphan = tag("Verwaist")
    first = health_report_create(now=now - timedelta(days=7))
    TagAssignment.objects.create(contact=contacts(1)[0], tag=orphan)
    tag("Neu verwaist")
    second = health_report_create(now=now)

    assert list(HealthReport.objects.all()) == [second, first]
    assert report_previous(second) == first
    changes = {c.label: c for c in report_comparison(second, first)}
    orphans = changes["Tags without holders"]
    assert (orphans.previous, orphans.current, orphans.delta) == (1, 1, 0)
    assert orphans.appeared == ["Neu verwaist"]
    assert orphans.resolved == ["Verwaist"]


@override_settings(TAGWERK_INSIGHT={"KEEP_REPORTS": 2})
def test_old_reports_are_pruned(now):
    reports = [health_report_create(now=now - timedelta(days=7 * k)) for k in (3, 2, 1, 0)]
    assert list(HealthReport.objects.all()) == [reports[3], reports[2]]


def test_report_mail_goes_through_the_mail_backend(tag, now):
    tag("Verwaist")
    report = health_report_create(now=now)

    sent = health_report_send(report=report, recipients=["team@example.com", " team@example.com"],
                              base_url="https://tagwerk.example.com/")

    assert sent == 1
    [message] = mail.outbox
    assert message.to == ["team@example.com"]
    assert message.subject.startswith("Tag health report")
    assert "1 without holders" in message.subject
    assert "Verwaist" in message.body
    assert f"https://tagwerk.example.com/admin/insight/healthreport/{report.pk}/change/" \
        in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert "Verwaist" in html
    report.refresh_from_db()
    assert report.sent_to == ["team@example.com"]
    assert report.sent_at is not None


def test_nothing_is_mailed_without_recipients(now):
    report = health_report_create(now=now)
    assert health_report_send(report=report, recipients=[]) == 0
    assert mail.outbox == []


@override_settings(TAGWERK_INSIGHT={"REPORT_RECIPIENTS": ["marketing@example.com"]})
def test_weekly_task_stores_and_mails_to_configured_recipients(tag):
    tag("Verwaist")

    report_id = health_report_task.delay().get()

    report = HealthReport.objects.get(pk=report_id)
    assert report.trigger == ReportTrigger.SCHEDULE
    assert [m.to for m in mail.outbox] == [["marketing@example.com"]]


def test_weekly_task_recipients_from_the_beat_entry_win(tag):
    health_report_task.delay(recipients=["chef@example.com"]).get()
    assert [m.to for m in mail.outbox] == [["chef@example.com"]]


def test_beat_runs_the_report_on_monday_morning():
    entry = PeriodicTask.objects.get(name="Tag health report (weekly)")
    assert entry.task == health_report_task.name
    assert (entry.crontab.day_of_week, entry.crontab.hour, entry.crontab.minute) == ("1", "7", "0")
    assert json.loads(entry.kwargs) == {"recipients": []}
    assert entry.enabled
    refresh = PeriodicTask.objects.get(name="Dashboard refresh")
    assert refresh.task == "tagging.insight.tasks.dashboard_refresh_task"


def test_command_prints_json_with_every_finding_naming_its_tags(tag, contacts, now):
    people = contacts(10)
    tag("Überall", holders=people)
    tag("Verwaist")
    out = StringIO()

    call_command("tag_health", "--json", stdout=out)

    data = json.loads(out.getvalue())
    for key in ("inactive", "overloaded", "count_health", "stale", "sleeping_vips",
                "near_twins", "orphans"):
        assert key in data
    assert [t["name"] for t in data["overloaded"]] == ["Überall"]
    assert [t["name"] for t in data["orphans"]] == ["Verwaist"]
    assert {t["name"] for t in data["inactive"]} == {"Überall", "Verwaist"}
    assert "Überall" in data["count_health"]["tags"]
    assert HealthReport.objects.get(pk=data["report_id"]).trigger == ReportTrigger.COMMAND


def test_command_rejects_a_bad_address():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Not an e-mail address"):
        call_command("tag_health", "--mail", "nobody")


@pytest.fixture
def vip_setup(tag, contacts):
    kaufkraft = DimensionFactory(name="Kaufkraft")
    asleep = contacts(2, idle_days=200)
    awake = contacts(1, idle_days=3)
    vip = tag("VIP", kaufkraft, holders=[*asleep, *awake])
    target = tag("Historischer Bestand - Reaktivierung erforderlich", kaufkraft)
    return vip, target, asleep, awake


def test_sleeping_vips_move_to_the_reactivation_tag(vip_setup, superuser):
    vip, target, asleep, awake = vip_setup

    result = sleeping_vips_move(actor=superuser)

    assert (result.added, result.removed) == (2, 2)
    assert set(TagAssignment.objects.filter(tag=target).values_list("contact_id", flat=True)) \
        == {c.pk for c in asleep}
    assert set(TagAssignment.objects.filter(tag=vip).values_list("contact_id", flat=True)) \
        == {awake[0].pk}
    assert AssignmentHistory.objects.filter(operation=result.operation).count() == 4
    assert sleeping_vips_move(actor=superuser).added == 0  # nobody left to move
    operation_undo(operation=result.operation)
    assert TagAssignment.objects.filter(tag=vip).count() == 3


def test_sleeping_vips_move_respects_tag_permissions(vip_setup, staff_user):
    vip, target, _asleep, _awake = vip_setup
    with pytest.raises(TagPermissionDenied):
        sleeping_vips_move(actor=staff_user)
    assert TagAssignment.objects.filter(tag=vip).count() == 3
    assert not TagAssignment.objects.filter(tag=target).exists()


def test_sleeping_vips_move_says_what_is_missing(tag, contacts):
    tag("VIP", DimensionFactory(name="Kaufkraft"), holders=contacts(1, idle_days=300))
    with pytest.raises(SleepingVipsError, match="does not exist"):
        sleeping_vips_move()


# --- admin -------------------------------------------------------------------------------


def test_admin_generates_shows_and_mails_a_report(client, superuser, tag):
    tag("Verwaist")
    client.force_login(superuser)

    response = client.post("/admin/insight/healthreport/generate/", follow=True)

    report = HealthReport.objects.get()
    assert report.trigger == ReportTrigger.ADMIN and report.requested_by == superuser
    page = response.content.decode()
    assert "1 tag without holders" in page
    assert "Verwaist" in page
    assert f"/admin/tagging/tag/{report.findings['orphans'][0]['id']}/change/" in page

    response = client.post(f"/admin/insight/healthreport/{report.pk}/send/",
                           {"recipients": "a@example.com, b@example.com"}, follow=True)
    assert "Report sent to 2 recipients." in response.content.decode()
    assert mail.outbox[0].to == ["a@example.com", "b@example.com"]


def test_admin_refuses_bad_addresses_without_sending(client, superuser):
    report = health_report_create()
    client.force_login(superuser)

    response = client.post(f"/admin/insight/healthreport/{report.pk}/send/",
                           {"recipients": "a@example.com, kein-mail"}, follow=True)

    assert "not valid: kein-mail" in response.content.decode()
    assert mail.outbox == []


def test_admin_report_list_and_bad_ids(client, superuser):
    health_report_create(trigger=ReportTrigger.COMMAND)
    client.force_login(superuser)
    assert client.get("/admin/insight/healthreport/").status_code == 200
    assert client.get("/admin/insight/healthreport/999999/change/").status_code == 404
    assert client.get("/admin/insight/healthreport/generate/").status_code == 302
    assert not HealthReport.objects.filter(trigger=ReportTrigger.ADMIN).exists()


def test_admin_one_click_move_of_sleeping_vips(client, superuser, vip_setup):
    _vip, target, _asleep, _awake = vip_setup
    report = health_report_create()
    client.force_login(superuser)
    page = client.get(f"/admin/insight/healthreport/{report.pk}/change/").content.decode()
    assert "Move them to “Historischer Bestand - Reaktivierung erforderlich”" in page

    response = client.post(f"/admin/insight/healthreport/{report.pk}/move-sleeping-vips/",
                           follow=True)

    assert "2 sleeping VIPs moved" in response.content.decode()
    assert TagAssignment.objects.filter(tag=target).count() == 2
    assert AssignmentHistory.objects.filter(
        tag=target, source_ref=f"health-report:{report.pk}", reason=Source.MANUAL).count() == 2


def test_staff_without_rights_sees_no_reports(client, staff_user):
    client.force_login(staff_user)
    assert client.post("/admin/insight/healthreport/generate/").status_code == 403
    assert not HealthReport.objects.exists()


def test_contacts_list_filters_used_by_the_findings(client, superuser, tag, contacts):
    silent = contacts(1, idle_days=200, first_name="Schläfer")[0]
    busy = contacts(1, idle_days=1, first_name="Wach")[0]
    t = tag("VIP", holders=[silent, busy])
    client.force_login(superuser)

    page = client.get(f"/admin/crm/contact/?insight_tag={t.pk}&insight_idle=180").content.decode()

    assert "Schläfer" in page and "Wach" not in page
    assert client.get("/admin/crm/contact/?insight_tag=abc").status_code == 200


def _links(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("url") and isinstance(item, str):
                yield item
            else:
                yield from _links(item)
    elif isinstance(value, list):
        for item in value:
            yield from _links(item)


def test_every_link_in_a_report_opens_a_page(client, superuser, tag, contacts, now):
    from tagging.models import TagVersion

    kaufkraft = DimensionFactory(name="Kaufkraft")
    people = contacts(3, idle_days=200)
    tag("VIP", kaufkraft, holders=people)
    tag("Historischer Bestand - Reaktivierung erforderlich", kaufkraft)
    tag("Bestellt", holders=people)
    tag("Bestelt", holders=people[:1])
    tag("Verwaist")
    TagVersion.objects.create(action="created", object_type="tag", object_id=1,
                              object_name="Neu")
    report = health_report_create(now=now)
    client.force_login(superuser)

    links = set(_links(report.findings))

    assert len(links) >= 8
    for url in links:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "?e=1" not in response.get("Location", ""), url
