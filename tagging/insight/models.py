"""Insight's records: tag health reports and dashboard snapshots."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ReportTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("weekly schedule")
    ADMIN = "admin", _("admin")
    COMMAND = "command", _("command")


class HealthReport(models.Model):
    """One tag health report: the findings as JSON, kept to compare week to week."""

    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    trigger = models.CharField(_("trigger"), max_length=10, choices=ReportTrigger.choices,
                               default=ReportTrigger.ADMIN)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("requested by"),
    )
    findings = models.JSONField(_("findings"), default=dict)
    summary = models.JSONField(
        _("summary"), default=dict, help_text=_("Number of tags per finding, for comparisons.")
    )
    duration_ms = models.PositiveIntegerField(_("took (ms)"), default=0)
    sent_to = models.JSONField(_("sent to"), default=list, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("tag health report")
        verbose_name_plural = _("tag health reports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return _("Tag health report of %(date)s") % {
            "date": timezone.localtime(self.created_at).strftime("%Y-%m-%d %H:%M")}


class DashboardSnapshot(models.Model):
    """The dashboard's aggregates, precomputed by beat so the page reads one row."""

    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    data = models.JSONField(_("data"), default=dict)
    duration_ms = models.PositiveIntegerField(_("took (ms)"), default=0)

    class Meta:
        verbose_name = _("dashboard snapshot")
        verbose_name_plural = _("dashboard snapshots")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M}"
