"""Entry points (a QR code, a link, an ad), the ads mapped to them, and each arrival."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign, Template
from crm.models import Contact
from tagging.models import Dimension, Tag

CODE_PATTERN = r"^[A-Z0-9][A-Z0-9-]{2,18}[A-Z0-9]$"


class EntryPointKind(models.TextChoices):
    CODE = "code", _("link and QR code")
    ADS = "ads", _("default for ads")


class EntryPoint(models.Model):
    """A place customers start a chat from: a QR code on a parcel card, a bio link, an ad.

    A message naming its code (anywhere, any case) tags the contact, records consent
    when writing counts as opting in, and triggers the welcome once.
    """

    name = models.CharField(_("name"), max_length=100, unique=True,
                            help_text=_("e.g. “Messe Köln 2026” or “Paketkarte Herbst”."))
    code = models.CharField(
        _("code"), max_length=20, unique=True,
        validators=[RegexValidator(CODE_PATTERN, _(
            "Use 4–20 capital letters, digits and inner hyphens, e.g. MESSE26."))],
        help_text=_("Short and unusual, e.g. MESSE26: a message containing it, in any case, "
                    "counts as arriving here. Empty: one is made up."))
    kind = models.CharField(_("kind"), max_length=10, choices=EntryPointKind.choices,
                            default=EntryPointKind.CODE,
                            help_text=_("One entry point may be the default for ads whose id "
                                        "is not mapped to another entry point."))
    tags = models.ManyToManyField(Tag, blank=True, related_name="+", verbose_name=_("tags"),
                                  help_text=_("Given to everybody who arrives here."))
    text = models.CharField(
        _("prefilled text"), max_length=500, blank=True,
        help_text=_("The message WhatsApp opens with; the code is added when missing. "
                    "Empty: “Hallo! <code>”."))
    consent = models.BooleanField(
        _("writing counts as marketing opt-in"), default=False,
        help_text=_("Only when the consent text is shown next to the QR code or link."))
    consent_text = models.TextField(
        _("consent text"), blank=True,
        help_text=_("What the customer sees, e.g. “Mit deiner Nachricht stimmst du zu, "
                    "Angebote per WhatsApp zu erhalten. Abmelden jederzeit mit STOP.”"))
    welcome_template = models.ForeignKey(
        Template, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("welcome template"),
        help_text=_("Sent once per contact, with the usual checks (consent, opt-out, "
                    "blocklist, frequency caps, quiet hours)."))
    welcome_campaign = models.ForeignKey(
        Campaign, on_delete=models.SET_NULL, null=True, blank=True, editable=False,
        related_name="+", verbose_name=_("welcome campaign"))
    headline_dimension = models.ForeignKey(
        Dimension, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("tag by the ad's headline in"),
        help_text=_("For ads: each contact also gets a tag named after the ad's headline, "
                    "created in this dimension on first use. Empty: no headline tag."))
    active = models.BooleanField(_("active"), default=True)
    active_from = models.DateTimeField(_("active from"), null=True, blank=True)
    active_until = models.DateTimeField(_("active until"), null=True, blank=True,
                                        help_text=_("Messages after this are not attributed."))
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("entry point")
        verbose_name_plural = _("entry points")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["kind"], condition=Q(kind="ads"),
                                    name="entrypoints_one_ads_default"),
        ]

    def __str__(self) -> str:
        return self.name


class AdSource(models.Model):
    """A Click-to-WhatsApp ad or post (its ``source_id``) attributed to an entry point."""

    source_id = models.CharField(_("ad or post id"), max_length=100, unique=True,
                                 help_text=_("The id Meta reports as the referral's source_id."))
    entry_point = models.ForeignKey(EntryPoint, on_delete=models.CASCADE,
                                    related_name="ad_sources", verbose_name=_("entry point"))
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("ad")
        verbose_name_plural = _("ads")

    def __str__(self) -> str:
        return self.source_id


class Arrival(models.Model):
    """One chat started through an entry point: who, when, and what it did."""

    entry_point = models.ForeignKey(EntryPoint, on_delete=models.CASCADE,
                                    related_name="arrivals", verbose_name=_("entry point"))
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+",
                                verbose_name=_("contact"))
    message_id = models.CharField(_("message id"), max_length=128)
    arrived_at = models.DateTimeField(_("arrived"))
    new_contact = models.BooleanField(_("new contact"), default=False)
    consented = models.BooleanField(_("consent recorded"), default=False)
    consent_text = models.TextField(_("consent text shown"), blank=True)
    referral = models.JSONField(_("ad referral"), default=dict, blank=True)

    class Meta:
        verbose_name = _("arrival")
        verbose_name_plural = _("arrivals")
        ordering = ["-arrived_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["entry_point", "message_id"],
                                    name="entrypoints_arrival_once"),
        ]
        indexes = [
            models.Index(fields=["entry_point", "arrived_at"], name="entrypoints_arrival_at"),
            models.Index(fields=["contact", "arrived_at"], name="entrypoints_arrival_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_point_id} ← {self.contact_id} {self.arrived_at:%Y-%m-%d %H:%M}"
