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

        # Campaign audiences and suppressions that name a tag: on its delete confirmation.
        from campaigns.models import Campaign
        from tagging.segments import expressions_naming
        from tagging.vocabulary import register_tag_reference

        def campaigns_naming(tag) -> int:
            texts = (f"({a}) OR ({s})" if a and s else a or s
                     for a, s in Campaign.objects.values_list("audience", "suppression"))
            return expressions_naming(tag, (t for t in texts if t))

        register_tag_reference(_("campaigns whose audience names it"), campaigns_naming)
