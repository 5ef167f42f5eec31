"""Templates, campaigns, the per-recipient send table and the webhook log."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.zones import validate_time_zone
from crm.models import Contact


class TemplateCategory(models.TextChoices):
    MARKETING = "marketing", _("marketing")
    UTILITY = "utility", _("utility")
    AUTHENTICATION = "authentication", _("authentication")


class TemplateStatus(models.TextChoices):
    PENDING = "pending", _("pending review")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", _("rejected")
    PAUSED = "paused", _("paused (low quality)")
    DISABLED = "disabled", _("disabled")


class Template(models.Model):
    """A WhatsApp message template as approved in WhatsApp Manager."""

    name = models.CharField(
        _("WhatsApp template name"), max_length=512,
        help_text=_("Exactly as in WhatsApp Manager, e.g. “spring_offer”."))
    language = models.CharField(_("language code"), max_length=15, default="de",
                                help_text=_("e.g. de, en_US, zh_CN"))
    category = models.CharField(_("category"), max_length=20, choices=TemplateCategory.choices,
                                default=TemplateCategory.MARKETING)
    body = models.TextField(
        _("body"), help_text=_("The approved text with {{1}}, {{2}} … placeholders."))
    variables = models.JSONField(
        _("variables"), default=list, blank=True,
        help_text=_('One entry per placeholder, in order: a source such as "salutation_last_name",'
                    ' "first_name", "attributes.coupon" or "text:FRUEHLING20"; or '
                    '{"source": …, "fallback": …}.'))
    header_image = models.FileField(
        _("header image"), upload_to="campaigns/headers/", blank=True,
        help_text=_("JPEG or PNG, at most 5 MB; 1920×1080 shows best."))
    header_image_link = models.URLField(
        _("header image URL"), blank=True,
        help_text=_("Public URL WhatsApp fetches the image from; "
                    "required with a header image when sending through the Cloud API."))
    footer = models.CharField(_("footer"), max_length=200, blank=True,
                              help_text=_("At most 60 characters (checked before launch)."))
    buttons = models.JSONField(_("buttons"), default=list, blank=True,
                               help_text=_('e.g. [{"type": "quick_reply", "text": "Stop"}]'))
    status = models.CharField(_("approval status"), max_length=20,
                              choices=TemplateStatus.choices, default=TemplateStatus.APPROVED)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["name", "language"]
        constraints = [models.UniqueConstraint(fields=["name", "language"],
                                               name="campaigns_template_name_lang")]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    SCHEDULED = "scheduled", _("scheduled")
    SENDING = "sending", _("sending")
    PAUSED = "paused", _("paused")
    COMPLETED = "completed", _("completed")
    CANCELLED = "cancelled", _("cancelled")
    ABORTED = "aborted", _("aborted")


class ABMetric(models.TextChoices):
    READ = "read", _("read rate")
    REPLY = "reply", _("reply rate")


class Campaign(models.Model):
    """One broadcast of a template to a snapshot of a segment."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="campaigns",
                                 verbose_name=_("template"))
    audience = models.TextField(
        _("audience"), help_text=_('A segment expression, e.g. "VIP" AND purchases > 3.'))
    suppression = models.TextField(
        _("suppression"), blank=True,
        help_text=_("Contacts matching this expression are left out (counted as suppressed)."))
    status = models.CharField(_("status"), max_length=20, choices=CampaignStatus.choices,
                              default=CampaignStatus.DRAFT, db_index=True)
    status_message = models.TextField(_("status message"), blank=True)
    scheduled_at = models.DateTimeField(
        _("send at"), null=True, blank=True,
        help_text=_("Empty: send when launched. Tue–Thu 11:00 or 20:00 is read most."))
    rate_per_second = models.PositiveIntegerField(
        _("messages per second"), null=True, blank=True,
        help_text=_("Empty: the number's limit (WHATSAPP_MAX_MPS, 80 by default)."))
    phone_number_id = models.CharField(
        _("sending phone number ID"), max_length=40, blank=True,
        help_text=_("Empty: WHATSAPP_PHONE_NUMBER_ID."))
    time_zone = models.CharField(
        _("time zone"), max_length=64, blank=True, validators=[validate_time_zone],
        help_text=_("The audience's local time, for quiet hours and the suggested send time. "
                    "Empty: the zone of the audience's most common country (fixed at launch), "
                    "else the server's TIME_ZONE."))
    quiet_start = models.TimeField(
        _("quiet hours from"), null=True, blank=True,
        help_text=_("Local time from which nothing is sent, e.g. 21:00. Empty: no quiet hours."))
    quiet_end = models.TimeField(
        _("quiet hours until"), null=True, blank=True,
        help_text=_("Local time at which sending resumes by itself, e.g. 08:00."))
    send_at_reading_hour = models.BooleanField(
        _("send at each contact's reading hour"), default=False,
        help_text=_("Spread the sends over the window below: each contact who read our "
                    "messages in the last 90 days gets it at the hour they read most, in "
                    "their own time zone; everybody else at the send time. Quiet hours "
                    "still apply."))
    reading_window_hours = models.PositiveSmallIntegerField(
        _("reading-hour window (hours)"), default=24,
        validators=[MinValueValidator(1), MaxValueValidator(168)],
        help_text=_("How long after the send time a message may wait for a contact's "
                    "reading hour: 1 to 168 (a week), e.g. 24 for one day."))
    # A/B test: {"variants": [{"key": "A", "template": id}, ...], "group_size": 1000,
    #            "holdout": 0, "metric": "read", "window_minutes": 60, "min_audience": 2000}
    ab_config = models.JSONField(_("A/B test"), default=dict, blank=True)
    ab_decided_at = models.DateTimeField(_("A/B decided"), null=True, blank=True)
    ab_winner = models.CharField(_("A/B winner"), max_length=8, blank=True)
    ab_summary = models.JSONField(_("A/B result"), default=dict, blank=True)
    followup_template = models.ForeignKey(
        Template, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("follow-up template"),
        help_text=_("Sent to recipients who did not reply, after the delay below."))
    followup_after_days = models.PositiveIntegerField(_("follow up after days"), default=3)
    followup_skip_read = models.BooleanField(
        _("follow up only unread"), default=False,
        help_text=_("Also leave out recipients who read the message."))
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="followups", verbose_name=_("follow-up of"))
    triggered = models.BooleanField(
        _("triggered"), default=False, editable=False,
        help_text=_("Gets its recipients one at a time when something happens (e.g. a welcome "
                    "for an entry point): never launched, keeps sending until cancelled."))
    launched_at = models.DateTimeField(_("launched"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def sender_id(self) -> str:
        return self.phone_number_id or settings.WHATSAPP_PHONE_NUMBER_ID or "sandbox"


class SendStatus(models.TextChoices):
    HELD = "held", _("held for the A/B winner")
    HOLDOUT = "holdout", _("holdout (not sent)")
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("in flight")
    SENT = "sent", _("sent")
    DELIVERED = "delivered", _("delivered")
    READ = "read", _("read")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")
    # 131049: WhatsApp's per-user marketing limit; retried later (not_before).
    LIMITED = "limited", _("limited by WhatsApp, retry later")


class Send(models.Model):
    """One recipient of one campaign: at most one message, ever."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sends")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="campaign_sends")
    phone = models.CharField(_("phone"), max_length=32)
    variant = models.CharField(_("variant"), max_length=8, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=SendStatus.choices,
                              default=SendStatus.QUEUED)
    wamid = models.CharField(_("WhatsApp message id"), max_length=128, blank=True)
    error_code = models.IntegerField(_("error code"), null=True, blank=True)
    error_detail = models.CharField(_("error"), max_length=500, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    deferrals = models.PositiveSmallIntegerField(
        _("deferrals"), default=0, help_text=_("Times WhatsApp limited this message (131049)."))
    not_before = models.DateTimeField(_("not before"), null=True, blank=True)
    claim = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    # Set right before the request to WhatsApp: a send in flight without it never left us.
    handed_at = models.DateTimeField(_("handed to WhatsApp"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed"), null=True, blank=True)
    replied_at = models.DateTimeField(_("replied"), null=True, blank=True)
    clicked_at = models.DateTimeField(
        _("clicked"), null=True, blank=True,
        help_text=_("When the recipient first opened a tracked link of this message."))
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"],
                                               name="campaigns_send_once")]
        indexes = [
            models.Index(fields=["campaign", "status", "not_before"], name="campaigns_send_due"),
            # The send loop's claim: the next queued sends of a campaign in id order, read
            # a batch at a time instead of sorting all that are left.
            models.Index(fields=["campaign", "id"], condition=models.Q(status="queued"),
                         name="campaigns_send_queued"),
            models.Index(fields=["wamid"], name="campaigns_send_wamid"),
            models.Index(fields=["contact", "sent_at"], name="campaigns_send_contact_at"),
            models.Index(fields=["status", "claimed_at"], name="campaigns_send_inflight"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} → {self.phone} ({self.status})"


class ExclusionReason(models.TextChoices):
    ALREADY = "already_in_campaign", _("already in this campaign")
    BLOCKLISTED = "blocklisted", _("blocklisted")
    OPTED_OUT = "opted_out", _("opted out")
    NO_CONSENT = "no_consent", _("no consent")
    INVALID_NUMBER = "invalid_number", _("invalid number")
    SUPPRESSED = "suppressed", _("suppression expression")
    FREQUENCY_CAP = "frequency_cap", _("frequency cap")


class Exclusion(models.Model):
    """A contact of the audience who was left out at launch, and why."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="exclusions")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(_("reason"), max_length=24, choices=ExclusionReason.choices)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("excluded contact")
        verbose_name_plural = _("excluded contacts")
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"],
                                               name="campaigns_exclusion_once")]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.reason}"


class StatusEvent(models.Model):
    """One status webhook for one message; (wamid, status) is stored once."""

    send = models.ForeignKey(Send, on_delete=models.CASCADE, null=True, blank=True,
                             related_name="status_events")
    wamid = models.CharField(max_length=128)
    status = models.CharField(max_length=12)
    occurred_at = models.DateTimeField()
    error_code = models.IntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("status event")
        verbose_name_plural = _("status events")
        ordering = ["occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["wamid", "status"],
                                               name="campaigns_status_once")]

    def __str__(self) -> str:
        return f"{self.wamid} {self.status}"


class WebhookDelivery(models.Model):
    """A signed webhook body as received, applied later on a worker.

    Applied: ``processed_at`` set, ``error`` empty. Set aside (a dead letter): ``processed_at``
    set and ``error`` says what was wrong with the body. Waiting: ``processed_at`` empty; after
    a transient database error ``retry_at``, ``attempts`` and ``error`` say when and why.
    """

    body = models.BinaryField()
    sha256 = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True, db_index=True)
    error = models.TextField(_("problem"), blank=True)
    attempts = models.PositiveSmallIntegerField(
        _("failed attempts"), default=0,
        help_text=_("Times applying it met a transient database error (deadlock, lost "
                    "connection); it is retried, never dropped."))
    retry_at = models.DateTimeField(_("next attempt"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"webhook {self.pk} {self.received_at:%Y-%m-%d %H:%M:%S}"


class WebhookDeadLetter(WebhookDelivery):
    """A delivery set aside because of its content: the admin's dead-letter list."""

    class Meta:
        proxy = True
        verbose_name = _("set-aside webhook")
        verbose_name_plural = _("set-aside webhooks")


class InboundMessage(models.Model):
    """A message a contact sent us, attributed to the campaign it answers."""

    message_id = models.CharField(max_length=128, unique=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    send = models.ForeignKey(Send, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="replies")
    kind = models.CharField(max_length=20)
    text = models.TextField(blank=True)
    action = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = _("inbound message")
        verbose_name_plural = _("inbound messages")
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.contact_id}: {self.text[:40]}"


class OptOut(models.Model):
    """Audit log of opt-outs and re-opt-ins coming from WhatsApp."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=40)  # keyword, user_preferences, error_131050
    detail = models.CharField(max_length=300, blank=True)
    resumed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("opt-out log entry")
        verbose_name_plural = _("opt-out log")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.source} {self.detail}"


class OptOutKeyword(models.Model):
    """A whole message that means “stop sending me marketing” (case-insensitive)."""

    word = models.CharField(_("keyword"), max_length=60, unique=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("opt-out keyword")
        verbose_name_plural = _("opt-out keywords")
        ordering = ["word"]

    def __str__(self) -> str:
        return self.word


class KeywordRule(models.Model):
    """Tag a contact whose message mentions one of the keywords."""

    name = models.CharField(_("name"), max_length=100)
    keywords = models.CharField(
        _("keywords"), max_length=500,
        help_text=_("Comma-separated; a message containing any of them matches "
                    "(case-insensitive)."))
    tag = models.ForeignKey("tagging.Tag", on_delete=models.CASCADE, related_name="+",
                            verbose_name=_("tag to add"))
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("keyword rule")
        verbose_name_plural = _("keyword rules")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SensitiveWord(models.Model):
    """A word that blocks (or warns about) a template at launch."""

    word = models.CharField(_("word"), max_length=100, unique=True)
    blocks = models.BooleanField(_("blocks launch"), default=True,
                                 help_text=_("Off: only warn."))

    class Meta:
        verbose_name = _("sensitive word")
        verbose_name_plural = _("sensitive words")
        ordering = ["word"]

    def __str__(self) -> str:
        return self.word


class Sender(models.Model):
    """State of one sending phone number: emergency stop and the DB token bucket."""

    phone_number_id = models.CharField(max_length=40, unique=True)
    stopped = models.BooleanField(default=False)
    stopped_reason = models.TextField(blank=True)
    # Theoretical arrival time (seconds since the epoch) of the DB fallback bucket.
    tat = models.FloatField(default=0)

    class Meta:
        verbose_name = _("sending number")
        verbose_name_plural = _("sending numbers")

    def __str__(self) -> str:
        return self.phone_number_id


class Alert(models.Model):
    """Something an operator must look at (quality throttle, account block, abort)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="alerts")
    code = models.IntegerField(null=True, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.message[:80]


class Lease(models.Model):
    """A named, expiring lock held across processes (send loops per campaign slot)."""

    key = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.key


class SandboxEvent(models.Model):
    """A webhook the sandbox sender will post to the app when it falls due."""

    due_at = models.DateTimeField(db_index=True)
    body = models.JSONField()
    posted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sandbox event {self.pk}"


class DeletionKeyword(models.Model):
    """A whole message that means “erase all my data” (case-insensitive); see docs/privacy.md."""

    word = models.CharField(_("keyword"), max_length=60, unique=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("deletion keyword")
        verbose_name_plural = _("deletion keywords")
        ordering = ["word"]

    def __str__(self) -> str:
        return self.word


class DeletionRequest(models.Model):
    """A customer asked by message to be erased; erased once they confirm by reply."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+",
                                verbose_name=_("contact"))
    requested_at = models.DateTimeField(_("asked"), default=timezone.now)
    confirmation_sent_at = models.DateTimeField(_("confirmation request sent"), null=True,
                                                blank=True)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)

    class Meta:
        verbose_name = _("deletion request")
        verbose_name_plural = _("deletion requests")
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.contact_id} {self.requested_at:%Y-%m-%d %H:%M}"


class SendingPolicy(models.Model):
    """Frequency caps and default quiet hours that marketers edit in the admin (one row).

    Read by the launch, triggered sends (journeys, welcomes) and the send loop
    through ``campaigns.policy``; an empty field falls back to the environment
    (``CAMPAIGNS_CAP_PER_DAY``, ``CAMPAIGNS_CAP_PER_WEEK``) or to no quiet hours.
    """

    cap_per_day = models.PositiveSmallIntegerField(
        _("marketing messages per contact per day"), null=True, blank=True,
        help_text=_("Across all campaigns and journeys. Empty: CAMPAIGNS_CAP_PER_DAY."))
    cap_per_week = models.PositiveSmallIntegerField(
        _("marketing messages per contact per 7 days"), null=True, blank=True,
        help_text=_("Across all campaigns and journeys. Empty: CAMPAIGNS_CAP_PER_WEEK."))
    quiet_start = models.TimeField(
        _("quiet hours from"), null=True, blank=True,
        help_text=_("For campaigns and journeys without quiet hours of their own, in their "
                    "audience's local time, e.g. 21:00. Empty: none."))
    quiet_end = models.TimeField(_("quiet hours until"), null=True, blank=True,
                                 help_text=_("e.g. 08:00."))
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("frequency caps and quiet hours")
        verbose_name_plural = _("frequency caps and quiet hours")
        constraints = [models.CheckConstraint(condition=models.Q(id=1),
                                              name="campaigns_sendingpolicy_single")]

    def __str__(self) -> str:
        return str(_("Frequency caps and quiet hours"))
