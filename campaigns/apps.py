from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns.insight import recent_campaigns_panel
        from tagging.insight import usage

        usage.register_panel(usage.Panel("campaigns", _("Recent campaigns"),
                                         recent_campaigns_panel, order=10))
