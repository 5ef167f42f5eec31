from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    """Journeys: messages and tag changes that follow a tag, an event, joining or a birthday."""

    name = "campaigns.journeys"
    label = "journeys"
    verbose_name = _("Journeys")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns.journeys import receivers, tasks  # noqa: F401 (registers the tasks)
        from campaigns.journeys.models import Journey
        from campaigns.journeys.selectors import contact_journeys_export, journey_tags_last_used
        from campaigns.journeys.services import contact_journeys_erase
        from crm.events import events_recorded
        from crm.privacy import PrivacyPart, privacy_parts
        from tagging.admin.contacts import register_source_ref_label
        from tagging.insight import usage
        from tagging.roles import MARKETERS, role_permissions_add
        from tagging.signals import tags_changed

        tags_changed.connect(receivers.on_tags_changed, dispatch_uid="journeys.tags")
        events_recorded.connect(receivers.on_events_recorded, dispatch_uid="journeys.events")
        # A tag an active journey names is in use (insight's "inactive tags" leaves it out).
        usage.register_usage_provider("journeys", journey_tags_last_used, _("a journey"))
        register_source_ref_label("journey", lambda pk: Journey.objects.filter(
            pk=pk).values_list("name", flat=True).first() if pk.isdigit() else None)
        privacy_parts.register(PrivacyPart(
            "journeys", _("journeys walked and each step's outcome"), contact_journeys_export,
            lambda subject: contact_journeys_erase(contact_id=subject.contact.pk)))
        role_permissions_add(MARKETERS, [
            "journeys.add_journey", "journeys.change_journey", "journeys.view_journey",
            "journeys.add_journeystep", "journeys.change_journeystep",
            "journeys.delete_journeystep", "journeys.view_journeystep",
            "journeys.view_enrollment"])
