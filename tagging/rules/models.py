"""Rules that keep tags true, and the log of their runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_celery_beat.validators import crontab_validator

from crm.models import EventKind


class RuleTrigger(models.TextChoices):
    EVENT = "event", _("on an event")
    SCHEDULE = "schedule", _("on a schedule")


class IntervalUnit(models.TextChoices):
    MINUTES = "minutes", _("minutes")
    HOURS = "hours", _("hours")
    DAYS = "days", _("days")


class Rule(models.Model):
    """When something happens (or on a schedule), for the contacts matching Who, change tags.

    Behaviour lives in ``tagging.rules.services``; the periodic task of a
    scheduled rule is kept in step by ``rule_save``/``rules_delete``, never
    by ``save()``.
    """

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    priority = models.IntegerField(
        _("priority"), default=100,
        help_text=_("Higher runs first and wins: in one run, a rule never undoes what a rule "
                    "of higher priority changed on the same contact."),
    )
    # When
    trigger = models.CharField(_("when"), max_length=10, choices=RuleTrigger.choices,
                               default=RuleTrigger.SCHEDULE)
    event_kind = models.CharField(_("event kind"), max_length=20, choices=EventKind.choices,
                                  blank=True)
    event_name = models.CharField(_("custom event name"), max_length=100, blank=True,
                                  help_text=_("For custom events: only events of this name."))
    event_product = models.CharField(_("product is"), max_length=200, blank=True,
                                     help_text=_("Only events for this product (any case)."))
    event_category = models.CharField(_("category is"), max_length=200, blank=True,
                                      help_text=_("Only events of this category, e.g. "
                                                  "“Lippenstift” (any case)."))
    event_min_amount = models.DecimalField(_("amount at least"), max_digits=14, decimal_places=2,
                                           null=True, blank=True)
    schedule_every = models.PositiveIntegerField(
        _("every"), null=True, blank=True,
        help_text=_("Run every N minutes, hours or days — or give a crontab instead."))
    schedule_unit = models.CharField(_("unit"), max_length=10, choices=IntervalUnit.choices,
                                     default=IntervalUnit.DAYS)
    schedule_crontab = models.CharField(
        _("crontab"), max_length=100, blank=True, validators=[crontab_validator],
        help_text=_("“minute hour day-of-month month day-of-week”, e.g. “0 3 * * *” daily at "
                    "03:00, “0 4 1 1,4,7,10 *” quarterly. Server time zone."))
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True,
        editable=False, related_name="+", verbose_name=_("periodic task"))
    # Who
    segment = models.TextField(
        _("who (segment)"), blank=True,
        help_text=_("A segment expression, e.g. "
                    "“\"VIP\" AND NOT last_interaction within 180d”. Empty means everyone "
                    "(for event rules: every contact the event is about)."))
    # Then
    add_tags = models.ManyToManyField("tagging.Tag", blank=True, related_name="+",
                                      verbose_name=_("add tags"))
    add_template = models.CharField(
        _("add a tag named"), max_length=120, blank=True,
        help_text=_("A tag name with placeholders, created on first use, e.g. "
                    "“Gekauft {date:%Y-%m} {product}”. Placeholders: {date}, {product}, "
                    "{category}, {name}, {amount}, {currency} (scheduled rules: {date} only)."))
    template_dimension = models.ForeignKey(
        "tagging.Dimension", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("dimension for new tags"))
    remove_tags = models.ManyToManyField("tagging.Tag", blank=True, related_name="+",
                                         verbose_name=_("remove tags"))
    remove_dimension = models.ForeignKey(
        "tagging.Dimension", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("remove every tag of"),
        help_text=_("Remove all tags of this dimension (except the ones this rule adds)."))
    expires_after_days = models.PositiveIntegerField(
        _("added tags expire after (days)"), null=True, blank=True)
    sync = models.BooleanField(
        _("remove when no longer matching"), default=False,
        help_text=_("Scheduled rules: also remove the added tags from contacts that hold them "
                    "but no longer match Who (e.g. “Geburtstag bald” after the birthday)."))
    starter_key = models.CharField(max_length=40, blank=True, editable=False, db_index=True,
                                   help_text=_("Set on starter rules so loading them is "
                                               "idempotent."))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("rule")
        verbose_name_plural = _("rules")
        ordering = ["-priority", "name"]
        permissions = [("run_rule", _("May run and preview rules"))]

    def __str__(self) -> str:
        return self.name

    @property
    def is_scheduled(self) -> bool:
        return self.trigger == RuleTrigger.SCHEDULE


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("schedule")
    EVENT = "event", _("event")
    MANUAL = "manual", _("manual")


class RuleRun(models.Model):
    """One run of one rule: what it matched and changed, how long it took, what went wrong."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="runs",
                             verbose_name=_("rule"))
    started_at = models.DateTimeField(_("when"), default=timezone.now)
    trigger = models.CharField(_("trigger"), max_length=10, choices=RunTrigger.choices)
    matched = models.PositiveIntegerField(_("contacts matched"), default=0)
    added = models.PositiveIntegerField(_("tags added"), default=0)
    removed = models.PositiveIntegerField(_("tags removed"), default=0)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), default=0)
    errors = models.TextField(_("errors"), blank=True)
    operation = models.UUIDField(_("operation"), null=True, blank=True,
                                 help_text=_("The tag history rows of this run share this id."))
    details = models.JSONField(_("details"), default=dict, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", verbose_name=_("by"))

    class Meta:
        verbose_name = _("rule run")
        verbose_name_plural = _("rule runs")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["rule", "started_at"], name="rules_run_rule_at")]

    def __str__(self) -> str:
        return f"{self.rule_id} @ {self.started_at:%Y-%m-%d %H:%M}"
