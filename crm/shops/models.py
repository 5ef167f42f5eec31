"""A connected shop: where its webhooks arrive and the secret that signs them."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Platform(models.TextChoices):
    SHOPIFY = "shopify", "Shopify"
    WOOCOMMERCE = "woocommerce", "WooCommerce"


class ShopConnection(models.Model):
    """One shop sending webhooks to ``/webhooks/shop/<slug>/``.

    Shopify orders and checkouts, WooCommerce orders become ``purchase`` and
    ``cart_abandoned`` events of the contact with the order's phone number.
    """

    name = models.CharField(_("name"), max_length=100, unique=True,
                            help_text=_("e.g. “Onlineshop (Shopify)”."))
    slug = models.SlugField(
        _("URL name"), max_length=50, unique=True,
        validators=[RegexValidator(r"^[a-z0-9-]+$", _("Lower-case letters, digits, hyphens."))],
        help_text=_("The last part of the webhook address, e.g. “onlineshop”."))
    platform = models.CharField(_("platform"), max_length=20, choices=Platform.choices)
    secret = models.CharField(
        _("signing secret"), max_length=200,
        help_text=_("Shopify: the secret shown under Settings → Notifications → Webhooks (or "
                    "the app's client secret). WooCommerce: the webhook's “Secret”."))
    create_contacts = models.BooleanField(
        _("create unknown customers"), default=True,
        help_text=_("An order from a phone number Tagwerk does not know creates the contact "
                    "(without marketing consent). Off: such orders are not stored."))
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_delivery_at = models.DateTimeField(_("last delivery"), null=True, blank=True,
                                            editable=False)
    last_outcome = models.CharField(_("last outcome"), max_length=300, blank=True,
                                    editable=False)

    class Meta:
        verbose_name = _("shop connection")
        verbose_name_plural = _("shop connections")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
