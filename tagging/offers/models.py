"""Offers: something only an audience may use (a price, an activity, a product)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Offer(models.Model):
    """An offer available to the contacts its audience expression selects, while valid.

    Valid from ``valid_from`` (inclusive) until ``valid_until`` (exclusive); an empty
    bound is open. Shops ask ``/api/v1/offers/<slug>/eligibility/`` before letting a
    customer buy or take part.
    """

    name = models.CharField(_("name"), max_length=200, unique=True,
                            help_text=_("e.g. “VIP-Vorverkauf Herbst”."))
    slug = models.SlugField(_("slug"), max_length=100, unique=True,
                            help_text=_("The offer's name in the API and in templates, e.g. "
                                        "vip-vorverkauf."))
    audience = models.TextField(
        _("audience"),
        help_text=_("Who may use it, as an expression, e.g. "
                    "“\"VIP\" AND NOT \"Drohender Abwanderer\"”."))
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True,
                                      help_text=_("Empty: valid at once."))
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True,
                                       help_text=_("The first moment it is no longer valid. "
                                                   "Empty: no end."))
    code = models.CharField(_("code"), max_length=100, blank=True,
                            help_text=_("A voucher code customers type, e.g. HERBST20."))
    link = models.URLField(_("link"), max_length=500, blank=True,
                           help_text=_("Where customers redeem it."))
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("offer")
        verbose_name_plural = _("offers")
        ordering = ["name"]
        constraints = [models.CheckConstraint(
            condition=models.Q(valid_from__isnull=True) | models.Q(valid_until__isnull=True)
            | models.Q(valid_until__gt=models.F("valid_from")),
            name="offers_offer_period_ordered")]

    def __str__(self) -> str:
        return self.name
