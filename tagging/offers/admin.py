"""Admin: offers with their period, state and current number of eligible contacts."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from tagging.offers.models import Offer
from tagging.offers.selectors import (
    EXPIRED,
    NOT_YET,
    offer_eligible_count,
    offer_period_state,
    offers_eligible_counts,
)
from tagging.offers.services import OfferError, offer_check


class OfferForm(forms.ModelForm):
    class Meta:
        model = Offer
        fields = ["name", "slug", "audience", "valid_from", "valid_until", "code", "link",
                  "description"]
        widgets = {"audience": forms.Textarea(attrs={"rows": 2})}

    def clean(self):
        data = super().clean()
        try:
            offer_check(audience=data.get("audience") or "", valid_from=data.get("valid_from"),
                        valid_until=data.get("valid_until"))
        except OfferError as exc:
            field = "audience" if "audience" in str(exc) or "expression" in str(exc) else (
                "valid_until")
            self.add_error(field, str(exc))
        return data


@admin.register(Offer)
class OfferAdmin(admin.ModelAdmin):
    form = OfferForm
    list_display = ["name", "slug", "audience", "valid_from", "valid_until", "state",
                    "eligible"]
    search_fields = ["name", "slug", "code"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["eligible_now"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description"]}),
        (_("Who and when"), {"fields": ["audience", "eligible_now", "valid_from",
                                        "valid_until"]}),
        (_("Redeeming"), {"fields": ["code", "link"]}),
    ]

    @admin.display(description=_("state"))
    def state(self, offer: Offer) -> str:
        state = offer_period_state(offer)
        if state == NOT_YET:
            return _("not valid yet")
        if state == EXPIRED:
            return _("expired")
        return _("valid")

    def get_changelist_instance(self, request):
        # The page's counts at once: one vocabulary load and one query, not three per row.
        changelist = super().get_changelist_instance(request)
        counts = offers_eligible_counts(changelist.result_list)
        for offer in changelist.result_list:
            offer.eligible_count = counts[offer.pk]
        return changelist

    @admin.display(description=_("eligible contacts"))
    def eligible(self, offer: Offer) -> str:
        counted = hasattr(offer, "eligible_count")  # on the list: counted with the page
        count = offer.eligible_count if counted else offer_eligible_count(offer)
        return _("invalid audience") if count is None else f"{count:,}"

    @admin.display(description=_("eligible contacts now"))
    def eligible_now(self, offer: Offer) -> str:
        if not offer.pk:
            return _("Shown once the offer is saved.")
        return self.eligible(offer)
