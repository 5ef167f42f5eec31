"""Admin: shop connections with the webhook address to paste into the shop."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from crm.shops.models import Platform, ShopConnection


class ShopConnectionForm(forms.ModelForm):
    class Meta:
        model = ShopConnection
        fields = ["name", "slug", "platform", "secret", "create_contacts", "active"]
        widgets = {"secret": forms.PasswordInput(render_value=True)}


@admin.register(ShopConnection)
class ShopConnectionAdmin(admin.ModelAdmin):
    form = ShopConnectionForm
    list_display = ["name", "platform", "active", "last_delivery_at", "last_outcome"]
    list_filter = ["platform", "active"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["webhook_address", "last_delivery_at", "last_outcome"]

    @admin.display(description=_("webhook address and topics"))
    def webhook_address(self, obj: ShopConnection) -> str:
        if not obj.pk:
            return _("Save first; the address to give the shop appears here.")
        path = reverse("shops:shop_webhook", args=[obj.slug])
        topics = ("orders/create, checkouts/create" if obj.platform == Platform.SHOPIFY
                  else "order.created")
        return format_html('<code id="shop-webhook-path">{}</code> ({})<br>{} {}', path,
                           _("after your Tagwerk address, e.g. https://tagwerk.example.com"),
                           _("Topics:"), topics)
