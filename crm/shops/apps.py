from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShopsConfig(AppConfig):
    """Shop webhooks (Shopify, WooCommerce) as a source of purchase and cart events."""

    name = "crm.shops"
    label = "shops"
    verbose_name = _("Shops")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.privacy import PrivacyPart, privacy_parts
        from crm.shops.services import shop_outcomes_erase

        # Orders are events (crm's part); only the last outcome shown may name a number.
        privacy_parts.register(PrivacyPart(
            "shops", _("shop deliveries"), lambda contact: [],
            lambda subject: shop_outcomes_erase(subject=subject), count=lambda contact: 0))
