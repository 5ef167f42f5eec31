"""A Chatwoot account Tagwerk talks to, which dimensions sync, and what sync could not do."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from crm.models import Contact
from tagging.models import Dimension


def _webhook_token() -> str:
    return secrets.token_urlsafe(24)


class ChatwootConnection(models.Model):
    """One Chatwoot account: its API (for labels) and the address its webhooks come to.

    Tags of the dimensions in ``dimensions`` travel both ways as contact labels; the
    label of a tag is its name in Chatwoot's spelling (``campaigns.chatwoot.labels``).
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    base_url = models.URLField(
        _("Chatwoot address"), help_text=_("e.g. https://app.chatwoot.com or your own server."))
    account_id = models.PositiveIntegerField(
        _("account id"), help_text=_("The number after /app/accounts/ in Chatwoot's address."))
    api_access_token = models.CharField(
        _("access token"), max_length=200,
        help_text=_("Chatwoot → Profile settings → Access token (an administrator's or an "
                    "agent bot's token that may change contacts)."))
    webhook_token = models.CharField(
        _("webhook token"), max_length=64, unique=True, default=_webhook_token,
        help_text=_("The secret last part of the webhook address; change it to revoke the "
                    "old address."))
    webhook_secret = models.CharField(
        _("webhook secret"), max_length=200, blank=True,
        help_text=_("Chatwoot's secret of this webhook (shown with the webhook in recent "
                    "Chatwoot versions). When set, a webhook without a valid signature "
                    "(X-Chatwoot-Signature) is refused."))
    dimensions = models.ManyToManyField(
        Dimension, blank=True, related_name="+", verbose_name=_("synced dimensions"),
        help_text=_("Tags of these dimensions are kept equal to the contact's labels in "
                    "Chatwoot, both ways. Other labels and tags are left alone."))
    sync_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("sync user"),
        help_text=_("Whose rights apply to a label changed in Chatwoot when Tagwerk cannot "
                    "tell which agent changed it. Empty: such changes are refused."))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("Chatwoot connection")
        verbose_name_plural = _("Chatwoot connections")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ContactLink(models.Model):
    """Which Chatwoot contact a Tagwerk contact is (learned from webhooks and searches)."""

    connection = models.ForeignKey(ChatwootConnection, on_delete=models.CASCADE,
                                   related_name="links")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="+")
    chatwoot_id = models.PositiveBigIntegerField(_("Chatwoot contact id"))

    class Meta:
        verbose_name = _("linked contact")
        verbose_name_plural = _("linked contacts")
        constraints = [
            models.UniqueConstraint(fields=["connection", "contact"],
                                    name="chatwoot_link_contact_unique"),
            models.UniqueConstraint(fields=["connection", "chatwoot_id"],
                                    name="chatwoot_link_chatwoot_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} ↔ {self.chatwoot_id}"


class SyncNote(models.Model):
    """Something label sync refused or could not do, for the administrator to read."""

    connection = models.ForeignKey(ChatwootConnection, on_delete=models.CASCADE,
                                   related_name="notes", verbose_name=_("connection"))
    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+", verbose_name=_("contact"))
    agent = models.CharField(_("agent"), max_length=200, blank=True)
    message = models.TextField(_("what happened"))

    class Meta:
        verbose_name = _("sync note")
        verbose_name_plural = _("sync notes")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return self.message[:80]
