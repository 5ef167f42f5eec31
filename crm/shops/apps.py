from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShopsConfig(AppConfig):
    """Shop webhooks (Shopify, WooCommerce) as a source of purchase and cart events."""

    name = "crm.shops"
    label = "shops"
    verbose_name = _("Shops")
    default_auto_field = "django.db.models.BigAutoField"
