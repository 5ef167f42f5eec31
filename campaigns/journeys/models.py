"""Journeys: steps a contact walks through after something happens (a tag, an event, a date).

A journey has a trigger, exit conditions and ordered steps. Each contact that enters
gets one ``Enrollment`` (once per journey; a birthday journey once a year) and a line
in ``EnrollmentStep`` per step it reached — unique per enrollment and position, so a
step is done once per contact even when a worker dies halfway and the step is run
again. Every message goes out through a triggered campaign of its step
(``campaigns.services.campaign_send_triggered``), whose one send per contact is the
exactly-once guarantee for messages.
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign, Template
from crm.models import Contact, EventKind
from tagging.models import Tag
from tagging.offers.models import Offer


class JourneyTrigger(models.TextChoices):
    TAG_ADDED = "tag_added", _("a tag is added")
    TAG_REMOVED = "tag_removed", _("a tag is removed")
    EVENT = "event", _("an event of a kind arrives")
    JOINED = "joined", _("the contact joins")
    BIRTHDAY = "birthday", _("the contact's birthday comes round")


class Journey(models.Model):
    """A short list of steps a marketer edits; contacts enter when the trigger happens."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    active = models.BooleanField(
        _("active"), default=False,
        help_text=_("Only active journeys let contacts in and move them on. Contacts "
                    "already inside wait while a journey is inactive."))
    active_since = models.DateTimeField(
        _("active since"), null=True, blank=True, editable=False,
        help_text=_("Joined contacts enter from this moment on, never from the past."))
    trigger = models.CharField(_("starts when"), max_length=20, choices=JourneyTrigger.choices)
    trigger_tag = models.ForeignKey(
        Tag, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("tag"), help_text=_("For “a tag is added / removed”."))
    trigger_event_kind = models.CharField(
        _("event kind"), max_length=20, choices=EventKind.choices, blank=True,
        help_text=_("For “an event of a kind arrives”."))
    audience = models.TextField(
        _("only for"), blank=True,
        help_text=_("Optional expression a contact must match to enter, e.g. "
                    "“consent = opted_in”."))
    exit_on_reply = models.BooleanField(_("leave when the contact replies"), default=False)
    exit_on_purchase = models.BooleanField(_("leave when the contact buys"), default=True)
    exit_on_opt_out = models.BooleanField(_("leave when the contact opts out"), default=True)
    exit_when_not_matching = models.BooleanField(
        _("leave when no longer matching"), default=False,
        help_text=_("Before each step: leave when the contact no longer matches “only for” "
                    "(or, for a tag trigger, no longer holds the tag / holds it again)."))
    # Copied onto each send step's triggered campaign (campaigns.reading does the work).
    send_at_reading_hour = models.BooleanField(
        _("send at each contact's reading hour"), default=False,
        help_text=_("A send step waits, within the window below, for the hour at which the "
                    "contact read our messages most in the last 90 days (their time zone); "
                    "contacts without reads get it at once. Quiet hours still apply."))
    reading_window_hours = models.PositiveSmallIntegerField(
        _("reading-hour window (hours)"), default=24,
        validators=[MinValueValidator(1), MaxValueValidator(168)],
        help_text=_("How long a message may wait for the reading hour: 1 to 168 (a week)."))
    starter_key = models.CharField(max_length=40, blank=True, editable=False, db_index=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StepKind(models.TextChoices):
    WAIT = "wait", _("wait")
    CHECK = "check", _("check an expression")
    SEND = "send", _("send a template")
    TAGS = "tags", _("add or remove tags")
    OFFER = "offer", _("check an offer")


class JourneyStep(models.Model):
    """One step; ``position`` orders them (1, 2, 3 …)."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(_("position"))
    kind = models.CharField(_("step"), max_length=10, choices=StepKind.choices)
    wait_days = models.PositiveIntegerField(_("wait days"), default=0)
    wait_hours = models.PositiveIntegerField(_("wait hours"), default=0)
    window_start = models.TimeField(
        _("send window from"), null=True, blank=True,
        help_text=_("Wait: then on until this local time of the contact, e.g. 11:00."))
    window_end = models.TimeField(_("send window until"), null=True, blank=True)
    expression = models.TextField(
        _("expression"), blank=True,
        help_text=_("Check: the contact goes on only when it matches now, e.g. "
                    "“NOT purchases > 0”; otherwise it leaves the journey."))
    template = models.ForeignKey(Template, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+", verbose_name=_("template"),
                                 help_text=_("Send: its variables are filled per contact."))
    offer = models.ForeignKey(
        Offer, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("offer"),
        help_text=_("Check an offer: the contact goes on only when it may use this offer "
                    "now (in its audience and within its validity); otherwise it leaves "
                    "the journey and the log says why."))
    add_tags = models.ManyToManyField(Tag, blank=True, related_name="+",
                                      verbose_name=_("add tags"))
    remove_tags = models.ManyToManyField(Tag, blank=True, related_name="+",
                                         verbose_name=_("remove tags"))

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ["journey", "position"]
        constraints = [models.UniqueConstraint(fields=["journey", "position"],
                                               name="journeys_step_position_unique")]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()}"


class StepCampaign(models.Model):
    """The triggered campaign a send step sends through (one per year for birthdays)."""

    step = models.ForeignKey(JourneyStep, on_delete=models.CASCADE, related_name="campaigns")
    occurrence = models.CharField(max_length=10, blank=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = _("step campaign")
        verbose_name_plural = _("step campaigns")
        constraints = [models.UniqueConstraint(fields=["step", "occurrence"],
                                               name="journeys_step_campaign_once")]

    def __str__(self) -> str:
        return str(self.campaign)


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", _("in the journey")
    COMPLETED = "completed", _("completed")
    EXITED = "exited", _("left")


class ExitReason(models.TextChoices):
    REPLIED = "replied", _("replied")
    PURCHASED = "purchased", _("bought")
    OPTED_OUT = "opted_out", _("opted out or blocklisted")
    NOT_MATCHING = "not_matching", _("no longer matches")
    CHECK_FAILED = "check_failed", _("did not pass a check")
    NOT_ELIGIBLE = "not_eligible", _("may not use the offer")


class Enrollment(models.Model):
    """One contact's walk through one journey; ``position`` is the next step to run."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    occurrence = models.CharField(
        _("occurrence"), max_length=10, blank=True,
        help_text=_("The year for a birthday journey; empty for journeys entered once."))
    status = models.CharField(_("status"), max_length=10, choices=EnrollmentStatus.choices,
                              default=EnrollmentStatus.ACTIVE)
    position = models.PositiveSmallIntegerField(_("next step"), default=1)
    due_at = models.DateTimeField(_("due"), default=timezone.now)
    entered_at = models.DateTimeField(_("entered"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    exit_reason = models.CharField(_("left because"), max_length=20,
                                   choices=ExitReason.choices, blank=True)

    class Meta:
        verbose_name = _("enrollment")
        verbose_name_plural = _("enrollments")
        ordering = ["-entered_at"]
        constraints = [models.UniqueConstraint(fields=["journey", "contact", "occurrence"],
                                               name="journeys_enrollment_once")]
        indexes = [models.Index(fields=["status", "due_at"], name="journeys_enr_due_idx")]

    def __str__(self) -> str:
        return f"{self.journey} · {self.contact_id}"


class Outcome(models.TextChoices):
    WAITING = "waiting", _("waiting")
    PASSED = "passed", _("passed the check")
    SENT = "sent", _("message queued")
    NOT_SENT = "not_sent", _("message not sent")
    TAGGED = "tagged", _("tags changed")
    EXITED = "exited", _("left")


class EnrollmentStep(models.Model):
    """What one step did for one contact: written once (unique), so a rerun changes nothing."""

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="log")
    position = models.PositiveSmallIntegerField(_("step"))
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices)
    detail = models.CharField(_("detail"), max_length=300, blank=True)
    at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        verbose_name = _("step outcome")
        verbose_name_plural = _("step outcomes")
        ordering = ["enrollment", "position"]
        constraints = [models.UniqueConstraint(fields=["enrollment", "position"],
                                               name="journeys_step_once")]

    def __str__(self) -> str:
        return f"{self.position}: {self.get_outcome_display()}"
