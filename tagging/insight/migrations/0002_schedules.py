"""Ensure the beat entries of insight: the Monday health report and the dashboard refresh.

Creates them only when missing, so times and recipients edited in the admin
(Periodic tasks) survive later migrations. ``TAGWERK_INSIGHT`` may override the
first schedule and recipients; the defaults below are frozen here on purpose.
"""

import json

from django.conf import settings
from django.db import migrations

REPORT = "Tag health report (weekly)"
DASHBOARD = "Dashboard refresh"
DEFAULTS = {"REPORT_SCHEDULE": {"minute": "0", "hour": "7", "day_of_week": "1"},
            "DASHBOARD_REFRESH_MINUTES": 10, "REPORT_RECIPIENTS": []}


def insight_setting(name: str):
    return (getattr(settings, "TAGWERK_INSIGHT", {}) or {}).get(name, DEFAULTS[name])


def ensure(apps, schema_editor):
    crontab_model = apps.get_model("django_celery_beat", "CrontabSchedule")
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    if not task_model.objects.filter(name=REPORT).exists():
        when = insight_setting("REPORT_SCHEDULE")
        crontab, _ = crontab_model.objects.get_or_create(
            minute=when["minute"], hour=when["hour"], day_of_week=when["day_of_week"],
            day_of_month="*", month_of_year="*", timezone=settings.TIME_ZONE,
        )
        task_model.objects.create(
            name=REPORT, task="tagging.insight.tasks.health_report_task", crontab=crontab,
            kwargs=json.dumps({"recipients": list(insight_setting("REPORT_RECIPIENTS"))}),
            description="Monday morning tag health report. Edit the schedule above and the "
                        "recipients in Keyword arguments, e.g. {\"recipients\": "
                        "[\"team@example.com\"]}; an empty list mails the addresses in "
                        "TAGWERK_HEALTH_REPORT_RECIPIENTS.",
        )
    if not task_model.objects.filter(name=DASHBOARD).exists():
        interval, _ = interval_model.objects.get_or_create(
            every=insight_setting("DASHBOARD_REFRESH_MINUTES"), period="minutes")
        task_model.objects.create(
            name=DASHBOARD, task="tagging.insight.tasks.dashboard_refresh_task",
            interval=interval,
            description="Recomputes the dashboard aggregates so the admin index reads one row.",
        )


def remove(apps, schema_editor):
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    task_model.objects.filter(name__in=[REPORT, DASHBOARD]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("insight", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(ensure, remove)]
