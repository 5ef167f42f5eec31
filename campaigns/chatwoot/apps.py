from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatwootConfig(AppConfig):
    """Chatwoot: the agents' sidebar (a Dashboard App) and two-way label sync."""

    name = "campaigns.chatwoot"
    label = "chatwoot"
    verbose_name = _("Chatwoot")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns.chatwoot import receivers, tasks  # noqa: F401 (registers the tasks)
        from campaigns.chatwoot.services import contact_chatwoot_erase, contact_chatwoot_export
        from crm.privacy import PrivacyPart, privacy_parts
        from tagging.admin.contacts import register_source_ref_label
        from tagging.roles import AGENTS, role_permissions_add
        from tagging.signals import tags_changed

        # The sidebar offers agents to create the contact of an unknown number.
        role_permissions_add(AGENTS, ["crm.add_contact"])

        tags_changed.connect(receivers.on_tags_changed, dispatch_uid="chatwoot.tags_changed")
        register_source_ref_label("chatwoot", receivers.sidebar_ref_label)
        register_source_ref_label("chatwoot-label", receivers.label_ref_label)
        # Which Chatwoot contact a customer is, and notes about them: exported and erased
        # with the customer (Chatwoot's own copy is Chatwoot's to erase).
        privacy_parts.register(PrivacyPart(
            "chatwoot", _("Chatwoot links and sync notes"), contact_chatwoot_export,
            lambda subject: contact_chatwoot_erase(contact_id=subject.contact.pk)))
