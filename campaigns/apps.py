from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = _("Campaigns")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns import tasks  # noqa: F401  (registers the app's tasks)
        from campaigns.health import sending_check, webhooks_check
        from campaigns.insight import (
            campaigns_naming,
            rates_by_holders,
            recent_campaigns_panel,
            tag_last_used,
        )
        from crm.health import register_check
        from tagging.insight import usage
        from tagging.roles import MARKETERS, role_permissions_add
        from tagging.vocabulary import register_tag_reference

        usage.register_panel(usage.Panel("campaigns", _("Recent campaigns"),
                                         recent_campaigns_panel, order=10))
        # Tags campaign audiences name are in use; analytics split send results by a tag.
        usage.register_usage_provider("campaigns", tag_last_used, _("a campaign"))
        usage.register_metric_provider("campaigns", rates_by_holders)
        # Campaign audiences and suppressions that name a tag: on its delete confirmation.
        register_tag_reference(_("campaigns whose audience names it"), campaigns_naming)
        register_check("webhooks", webhooks_check, critical=False)  # alert on it; keep serving
        register_check("sending", sending_check, critical=False)
        role_permissions_add(MARKETERS, [
            "campaigns.add_campaign", "campaigns.change_campaign", "campaigns.view_campaign",
            "campaigns.add_template", "campaigns.change_template", "campaigns.view_template",
            "campaigns.change_sendingpolicy", "campaigns.view_sendingpolicy"])
        _register_privacy()


def _register_privacy() -> None:
    """Messages, replies, opt-outs and raw webhook bodies: exported, erased, pruned."""
    from campaigns import selectors
    from campaigns.services import contact_messages_erase
    from campaigns.statuses import status_events_prune
    from campaigns.webhooks import (
        inbound_texts_prune,
        webhook_bodies_erase,
        webhook_bodies_prune,
    )
    from crm.privacy import PrivacyPart, Retention, privacy_parts, register_retention

    privacy_parts.register(PrivacyPart(
        "messages", _("campaign messages and their statuses"),
        selectors.contact_messages_export,
        lambda subject: contact_messages_erase(subject=subject),
        count=selectors.contact_messages_count))
    privacy_parts.register(PrivacyPart(
        "inbound_messages", _("messages received"), selectors.contact_inbound_export,
        lambda subject: webhook_bodies_erase(subject=subject),
        count=selectors.contact_inbound_count))
    privacy_parts.register(PrivacyPart(
        "consent_log", _("opt-outs and erasure requests"),
        selectors.contact_consent_log_export, lambda subject: 0,
        count=selectors.contact_consent_log_count))
    privacy_parts.register(PrivacyPart(
        "exclusions", _("campaigns that left the contact out"),
        selectors.contact_exclusions_export, lambda subject: 0,
        count=selectors.contact_exclusions_count))
    for key, label, protects, prune in (
        ("webhook_bodies", _("raw WhatsApp webhook bodies, after processing"),
         _("They hold numbers, names and message texts; once applied only a replay needs "
           "them."), webhook_bodies_prune),
        ("inbound_texts", _("texts of messages received"),
         _("What customers wrote; the message stays counted as a reply."),
         inbound_texts_prune),
        ("status_events", _("message status webhooks"),
         _("Each message keeps its latest status and times; the single reports go."),
         status_events_prune),
    ):
        register_retention(Retention(key, label, protects, prune))
