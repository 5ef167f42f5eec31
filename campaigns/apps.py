from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns import tasks  # noqa: F401  (registers the app's tasks)
        from campaigns.health import webhooks_check
        from campaigns.insight import campaigns_naming, recent_campaigns_panel
        from crm.health import register_check
        from tagging.insight import usage
        from tagging.roles import MARKETERS, role_permissions_add
        from tagging.vocabulary import register_tag_reference

        usage.register_panel(usage.Panel("campaigns", _("Recent campaigns"),
                                         recent_campaigns_panel, order=10))
        # Campaign audiences and suppressions that name a tag: on its delete confirmation.
        register_tag_reference(_("campaigns whose audience names it"), campaigns_naming)
        register_check("webhooks", webhooks_check, critical=False)  # alert on it; keep serving
        role_permissions_add(MARKETERS, [
            "campaigns.add_campaign", "campaigns.change_campaign", "campaigns.view_campaign",
            "campaigns.add_template", "campaigns.change_template", "campaigns.view_template",
            "campaigns.change_sendingpolicy", "campaigns.view_sendingpolicy"])
