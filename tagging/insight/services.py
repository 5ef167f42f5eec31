"""Writes for insight: health reports, their e-mail, dashboard snapshots, the sleeping-VIP move."""

from __future__ import annotations

import time
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from tagging.insight.conf import insight_setting
from tagging.insight.models import DashboardSnapshot, HealthReport, ReportTrigger
from tagging.insight.selectors import (
    dashboard_data,
    findings_summary,
    health_findings,
    reactivation_tag,
    report_comparison,
    report_headline,
    report_previous,
    sleeping_vips,
    vip_tags,
)
from tagging.models import Source
from tagging.services import TagChangeError, TagChangeResult, tags_change


def health_report_create(*, trigger: str = ReportTrigger.ADMIN, actor=None,
                         now: datetime | None = None) -> HealthReport:
    """Compute the tag health report and store it; keep the newest ``KEEP_REPORTS``.

    Every call stores a new report (a report is a dated observation, so two
    runs on one day are two rows); nothing else changes.
    """
    started = time.monotonic()
    now = now or timezone.now()
    findings = health_findings(now=now)
    report = HealthReport.objects.create(
        created_at=now, trigger=trigger, requested_by=actor, findings=findings,
        summary=findings_summary(findings),
        duration_ms=int((time.monotonic() - started) * 1000),
    )
    keep = HealthReport.objects.order_by("-created_at", "-id").values("pk")[
        :insight_setting("KEEP_REPORTS")]
    HealthReport.objects.exclude(pk__in=list(keep.values_list("pk", flat=True))).delete()
    return report


def report_recipients(recipients: list[str] | None = None) -> list[str]:
    """The recipients asked for, else the configured ones; blanks and duplicates dropped."""
    chosen = recipients if recipients else insight_setting("REPORT_RECIPIENTS")
    return list(dict.fromkeys(r.strip() for r in chosen if r and r.strip()))


def health_report_send(*, report: HealthReport, recipients: list[str],
                       base_url: str = "") -> int:
    """Mail ``report`` (plain text and HTML) through Django's mail backend; return mails sent.

    ``base_url`` (e.g. ``https://tagwerk.example.com``) makes the links in the
    mail absolute. Sending again sends again: each call is an explicit request.
    """
    recipients = report_recipients(recipients)
    if not recipients:
        return 0
    previous = report_previous(report)
    context = {
        "report": report, "f": report.findings, "headline": report_headline(report.summary),
        "changes": report_comparison(report, previous), "previous": previous,
        "base_url": base_url.rstrip("/"),
    }
    subject = _("Tag health report %(date)s: %(headline)s") % {
        "date": timezone.localtime(report.created_at).strftime("%Y-%m-%d"),
        "headline": "; ".join(context["headline"][:3]),
    }
    message = EmailMultiAlternatives(
        subject=subject[:200],
        body=render_to_string("insight/health_report_email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL, to=recipients,
        connection=get_connection(),
    )
    message.attach_alternative(render_to_string("insight/health_report_email.html", context),
                               "text/html")
    sent = message.send()
    if sent:
        report.sent_to = sorted(set(report.sent_to) | set(recipients))
        report.sent_at = timezone.now()
        report.save(update_fields=["sent_to", "sent_at"])
    return sent


def health_report_weekly(*, recipients: list[str] | None = None,
                         base_url: str = "") -> HealthReport:
    """The Monday job: create the report and mail it to the configured recipients."""
    report = health_report_create(trigger=ReportTrigger.SCHEDULE)
    health_report_send(report=report, recipients=report_recipients(recipients),
                       base_url=base_url)
    return report


def dashboard_snapshot_refresh(*, now: datetime | None = None) -> DashboardSnapshot:
    """Recompute the dashboard aggregates into a new snapshot; keep the newest few."""
    started = time.monotonic()
    now = now or timezone.now()
    data = dashboard_data(now=now)
    snapshot = DashboardSnapshot.objects.create(
        created_at=now, data=data, duration_ms=int((time.monotonic() - started) * 1000))
    keep = list(DashboardSnapshot.objects.order_by("-created_at", "-id")
                .values_list("pk", flat=True)[:insight_setting("KEEP_SNAPSHOTS")])
    DashboardSnapshot.objects.exclude(pk__in=keep).delete()
    return snapshot


class SleepingVipsError(ValueError):
    """The move cannot run as configured (e.g. the reactivation tag does not exist)."""


def sleeping_vips_move(*, actor=None, now: datetime | None = None,
                       report: HealthReport | None = None) -> TagChangeResult:
    """Move today's sleeping VIPs to the reactivation tag: add it, remove their VIP tags.

    The contacts are selected again at call time, not taken from an old
    report. One ``tags_change`` call: permissions are the actor's, the
    history records it, and ``operation_undo`` takes it back. Repeating the
    call finds nobody left to move.
    """
    target = reactivation_tag()
    if target is None:
        raise SleepingVipsError(
            _("The tag “%(tag)s” does not exist. Create it in the dimension “%(dim)s” or set "
              "TAGWERK_INSIGHT['REACTIVATION_TAG'] to the tag to use.")
            % {"tag": insight_setting("REACTIVATION_TAG"),
               "dim": insight_setting("PURCHASING_POWER_DIMENSION")})
    vips = [t for t in vip_tags() if t.pk != target.pk]
    contacts = sleeping_vips(now=now or timezone.now())
    try:
        with transaction.atomic():
            return tags_change(
                contacts=contacts, add=[target], remove=vips, actor=actor,
                source=Source.MANUAL if actor else Source.SYSTEM,
                source_ref=f"health-report:{report.pk}" if report else "health-report",
            )
    except TagChangeError as exc:
        raise SleepingVipsError(str(exc)) from exc
