from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OffersConfig(AppConfig):
    """Offers only a tag may use: who is eligible, answered for shops over the API."""

    name = "tagging.offers"
    label = "offers"
    verbose_name = _("Offers")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tagging.insight import usage
        from tagging.offers.selectors import offer_tags_last_used
        from tagging.roles import MARKETERS, role_permissions_add

        # A tag an offer's audience names is in use while the offer runs (inactive tags).
        usage.register_usage_provider("offers", offer_tags_last_used, _("an offer"))

        role_permissions_add(MARKETERS, ["offers.add_offer", "offers.change_offer",
                                         "offers.view_offer", "offers.delete_offer"])
