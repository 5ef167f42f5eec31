from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("Customers")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm import tasks  # noqa: F401  (registers the app's tasks)
        from crm.health import checks_register_defaults

        checks_register_defaults()
        _register_privacy()


def _register_privacy() -> None:
    """The profile and the events: first in every export, erased last (crm.privacy)."""
    from crm.events import events_erase, events_prune
    from crm.privacy import PrivacyPart, Retention, privacy_parts, register_retention
    from crm.selectors import (
        contact_events_count,
        contact_events_export,
        contact_profile_export,
    )
    from crm.services import contact_anonymise

    privacy_parts.register(PrivacyPart(
        "profile", _("profile and consent"), contact_profile_export,
        lambda subject: contact_anonymise(subject=subject), count=lambda contact: 1))
    privacy_parts.register(PrivacyPart(
        "events", _("events"), contact_events_export,
        lambda subject: events_erase(contact_id=subject.contact.pk),
        count=contact_events_count))
    register_retention(Retention(
        "events", _("events (purchases, interactions, message statuses)"),
        _("Activity facts on the contact are already counted; old events only feed "
          "reports of old campaigns."), events_prune))
