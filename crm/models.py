from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.phones import InvalidPhoneNumber, country_of, normalize_phone


class Gender(models.TextChoices):
    FEMALE = "f", _("female")
    MALE = "m", _("male")
    DIVERSE = "d", _("diverse")
    UNKNOWN = "", _("unknown")


class ConsentStatus(models.TextChoices):
    UNKNOWN = "unknown", _("unknown")
    OPTED_IN = "opted_in", _("opted in")
    OPTED_OUT = "opted_out", _("opted out")


class Contact(models.Model):
    """A WhatsApp customer, identified by an E.164 phone number."""

    phone = models.CharField(
        _("phone"), max_length=32, unique=True,
        help_text=_("International form with country code, e.g. +8529123 4567; "
                    "spaces, dashes and a leading 00 are accepted and cleaned up."),
    )
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    salutation = models.CharField(
        _("salutation"), max_length=40, blank=True, help_text=_("e.g. “Frau”, “Ms”, “Dr.”")
    )
    gender = models.CharField(_("gender"), max_length=1, choices=Gender.choices, blank=True)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    language = models.CharField(
        _("language"), max_length=10, blank=True, help_text=_("ISO code such as de, en, zh.")
    )
    country = models.CharField(
        _("country"), max_length=2, blank=True, editable=False,
        help_text=_("Derived from the phone number."),
    )
    city = models.CharField(_("city / region"), max_length=100, blank=True)
    occupation = models.CharField(_("occupation"), max_length=100, blank=True)
    external_label = models.CharField(
        _("external label"), max_length=30, blank=True,
        help_text=_("Short remark shown with the display name, e.g. “VIP☀”."),
    )
    notes = models.TextField(_("notes"), blank=True)
    attributes = models.JSONField(
        _("attributes"), default=dict, blank=True, help_text=_("Custom facts as JSON.")
    )

    consent_status = models.CharField(
        _("marketing consent"), max_length=10, choices=ConsentStatus.choices,
        default=ConsentStatus.UNKNOWN,
        help_text=_("Only opted-in contacts receive marketing messages."),
    )
    consent_source = models.CharField(_("consent source"), max_length=200, blank=True)
    consent_at = models.DateTimeField(_("consent changed at"), null=True, blank=True)
    is_blocked = models.BooleanField(
        _("blocklisted"), default=False, help_text=_("Never message this number.")
    )

    # Activity facts, kept up to date by events; rules and segments read them.
    purchase_count = models.PositiveIntegerField(_("purchases"), default=0)
    total_spent = models.DecimalField(_("total spent"), max_digits=14, decimal_places=2, default=0)
    first_purchase_at = models.DateTimeField(_("first purchase"), null=True, blank=True)
    last_purchase_at = models.DateTimeField(_("last purchase"), null=True, blank=True)
    last_interaction_at = models.DateTimeField(_("last interaction"), null=True, blank=True)
    last_read_at = models.DateTimeField(_("last message read"), null=True, blank=True)
    last_reply_at = models.DateTimeField(_("last reply"), null=True, blank=True)

    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Not created_at: a customer imported today may have bought for years. Only ever moves
    # earlier (crm.services), so rules judge imported history as if it had been here.
    joined_at = models.DateTimeField(
        _("customer since"), default=timezone.now, db_index=True,
        help_text=_("The earliest of: a customer-since date from an import, the first event "
                    "or message, and when the contact was created in Tagwerk."))

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-id"]
        # Agents edit a customer's profile; consent, the blocklist and exports are for roles
        # that answer for marketing (tagging.roles gives them to Marketers).
        permissions = [
            ("change_consent", _("Can change marketing consent and the blocklist")),
            ("export_contacts", _("Can export contacts")),
            ("erase_contact", _("Can erase a contact and all their data")),
        ]
        indexes = [
            models.Index(fields=["last_interaction_at"], name="crm_contact_last_inter_idx"),
            models.Index(fields=["last_read_at"], name="crm_contact_last_read_idx"),
            models.Index(fields=["last_purchase_at"], name="crm_contact_last_purch_idx"),
            models.Index(fields=["purchase_count"], name="crm_contact_purchases_idx"),
            models.Index(fields=["last_name", "first_name"], name="crm_contact_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.phone})" if self.display_name else self.phone

    def clean(self) -> None:
        try:
            self.phone = normalize_phone(self.phone)
        except InvalidPhoneNumber as exc:
            raise ValidationError({"phone": str(exc)}) from None
        self.country = country_of(self.phone)

    @property
    def display_name(self) -> str:
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return f"{name} {self.external_label}".strip() if self.external_label else name


class EventKind(models.TextChoices):
    PURCHASE = "purchase", _("purchase")
    CART_ABANDONED = "cart_abandoned", _("cart abandoned")
    INTERACTION = "interaction", _("interaction")
    MESSAGE_SENT = "message_sent", _("message sent")
    MESSAGE_DELIVERED = "message_delivered", _("message delivered")
    MESSAGE_READ = "message_read", _("message read")
    MESSAGE_REPLIED = "message_replied", _("message replied")
    LINK_CLICKED = "link_clicked", _("link clicked")
    CUSTOM = "custom", _("custom")


class Event(models.Model):
    """Something a contact did or that happened to them; append-only.

    Events come from outside (API, CSV, shop integrations) and from campaigns
    (message statuses). They keep the contact's activity facts current and
    feed rules and reports.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events",
                                db_index=False)  # served by crm_event_contact_at
    kind = models.CharField(_("kind"), max_length=20, choices=EventKind.choices)
    name = models.CharField(_("name"), max_length=100, blank=True,
                            help_text=_("The custom event's name; empty for built-in kinds."))
    occurred_at = models.DateTimeField(_("occurred"))
    received_at = models.DateTimeField(_("received"), default=timezone.now)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, null=True,
                                 blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    product = models.CharField(_("product"), max_length=200, blank=True)
    category = models.CharField(_("category"), max_length=200, blank=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    source = models.CharField(_("source"), max_length=20, default="service",
                              help_text=_("api, import, campaign, webhook or service."))
    source_id = models.CharField(
        _("source id"), max_length=200, blank=True,
        help_text=_("The sender's id for the event; the same id twice is stored once."),
    )
    batch = models.UUIDField(_("batch"), db_index=True, editable=False,
                             help_text=_("Events recorded together share this id."))

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "source_id"], name="crm_event_source_id",
                                    condition=~models.Q(source_id="")),
        ]
        indexes = [
            models.Index(fields=["contact", "occurred_at"], name="crm_event_contact_at"),
            models.Index(fields=["kind", "occurred_at"], name="crm_event_kind_at"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.kind} · {self.contact_id} · {self.occurred_at:%Y-%m-%d %H:%M}"


# --- API tokens ---------------------------------------------------------------------------


class ApiScope(models.TextChoices):
    """What a token may do; each endpoint of ``/api/v1/`` names the scope it needs."""

    CONTACTS_READ = "contacts:read", _("contacts:read — read contacts and their tags")
    CONTACTS_WRITE = "contacts:write", _("contacts:write — create and change contacts")
    TAGS_WRITE = "tags:write", _("tags:write — add and remove tags of its dimensions")
    TAGS_ADMIN = "tags:admin", _("tags:admin — create and change dimensions and tags")
    SEGMENTS_READ = "segments:read", _("segments:read — read segments, counts and members")
    BULK_WRITE = "bulk:write", _("bulk:write — start bulk tag changes of its dimensions")
    EVENTS_WRITE = "events:write", _("events:write — send events")
    OFFERS_READ = "offers:read", _("offers:read — read offers and who may use them")


# Scopes that change who holds which tag: a token with one of them names its dimensions.
TAG_CHANGING_SCOPES = frozenset({ApiScope.TAGS_WRITE, ApiScope.BULK_WRITE})


class ApiToken(models.Model):
    """A bearer token for the HTTP API; only its SHA-256 is stored.

    The secret is shown once, when the token is created in the admin. A
    revoked token stays in the list (for the record of who used what) but is
    refused from that moment on.
    """

    name = models.CharField(_("name"), max_length=100,
                            help_text=_("Who or what uses it, e.g. “Shop (Shopify)”."))
    prefix = models.CharField(_("prefix"), max_length=12, editable=False,
                              help_text=_("The token's first characters, to recognise it."))
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(_("scopes"), default=list, blank=True,
                              help_text=_("What the token may do."))
    dimensions = models.JSONField(
        _("dimensions"), default=list, blank=True,
        help_text=_("Ids of the dimensions whose tags the token may add and remove "
                    "(tags:write, bulk:write)."))
    all_dimensions = models.BooleanField(
        _("all dimensions"), default=False,
        help_text=_("May add and remove tags of every dimension, present and future."))
    rate_limit = models.PositiveIntegerField(
        _("requests per minute"), null=True, blank=True,
        help_text=_("Leave empty for the default (setting TAGWERK_API_RATE_PER_MINUTE)."))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   blank=True, related_name="+", verbose_name=_("created by"))
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def may_change_dimension(self, dimension_id: int) -> bool:
        """Whether tags of this dimension may be added and removed with this token."""
        return self.all_dimensions or dimension_id in self.dimensions


# --- Privacy: erasures and retention (crm.privacy) ------------------------------------------


class Erasure(models.Model):
    """One erased contact: who asked for it, when and why, and the number's salted hash.

    The hash is all that is kept of the number: ``crm.privacy.numbers_erased`` reads it so
    an erased number is never messaged again nor imported anew. It cannot be turned back
    into the number without the salt (setting ``PRIVACY_NUMBER_SALT``).
    """

    phone_hash = models.CharField(_("number (salted hash)"), max_length=64, db_index=True,
                                  editable=False)
    erased_at = models.DateTimeField(_("erased"), default=timezone.now, editable=False)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", verbose_name=_("by"),
                              editable=False)
    via = models.CharField(_("requested through"), max_length=20, editable=False,
                           help_text=_("admin, command or keyword (the customer's message)."))
    reason = models.TextField(_("reason"), blank=True, editable=False)
    removed = models.JSONField(_("what was removed"), default=dict, blank=True, editable=False,
                               help_text=_("Rows deleted or anonymised, per kind."))

    class Meta:
        verbose_name = _("erasure")
        verbose_name_plural = _("erasures")
        ordering = ["-erased_at", "-id"]

    def __str__(self) -> str:
        return f"{self.erased_at:%Y-%m-%d %H:%M} {self.phone_hash[:12]}…"


class RetentionPeriod(models.Model):
    """How long one kind of stored data is kept; overrides the setting's default."""

    key = models.CharField(_("data"), max_length=40, unique=True,
                           help_text=_("Which data, e.g. webhook_bodies."))
    days = models.PositiveIntegerField(
        _("keep for (days)"), null=True, blank=True,
        help_text=_("Empty: keep forever."))

    class Meta:
        verbose_name = _("retention period")
        verbose_name_plural = _("retention periods")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class JobStatus(models.TextChoices):
    QUEUED = "queued", _("waiting for a worker")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class Job(models.Model):
    """Who holds a long job (an import, a bulk operation, a rule run) and when it last
    showed life. Written only by ``crm.jobs``; the job's own record (``ImportJob`` …)
    keeps its progress, cursor and report.
    """

    kind = models.CharField(_("kind"), max_length=40)
    ref = models.BigIntegerField(_("record"), help_text=_("The id of the job's own record."))
    status = models.CharField(_("status"), max_length=10, choices=JobStatus.choices,
                              default=JobStatus.QUEUED)
    holder = models.CharField(_("held by"), max_length=200, blank=True,
                              help_text=_("The worker process running it (host, process, claim)."))
    heartbeat_at = models.DateTimeField(
        _("last sign of life"), default=timezone.now,
        help_text=_("Renewed after every slice of work; a running job silent for longer than "
                    "TAGWERK_JOB_STALE_SECONDS is taken over by another worker."))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    args = models.JSONField(_("arguments"), default=list, blank=True,
                            help_text=_("Passed to the task after the record's id."))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    message = models.TextField(_("message"), blank=True)

    class Meta:
        verbose_name = _("background job")
        verbose_name_plural = _("background jobs")
        constraints = [models.UniqueConstraint(fields=["kind", "ref"], name="crm_job_kind_ref")]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="crm_job_status_beat")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.ref}"
