from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EntryPointsConfig(AppConfig):
    """Entry points: the links, QR codes and ads customers start a WhatsApp chat from."""

    name = "campaigns.entrypoints"
    label = "entrypoints"
    verbose_name = _("Entry points")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns import webhooks
        from campaigns.entrypoints import receivers
        from campaigns.entrypoints.admin import ArrivalsContactPart
        from campaigns.entrypoints.models import EntryPoint
        from crm.admin import contact_admin_parts
        from tagging.admin.contacts import register_source_ref_label
        from tagging.roles import MARKETERS, role_permissions_add

        # An inbound message naming a code (or carrying an ad's referral) finds or creates
        # its contact; every stored inbound message is then attributed to its entry points.
        if receivers.contact_for_arrival not in webhooks.inbound_contact_finders:
            webhooks.inbound_contact_finders.append(receivers.contact_for_arrival)
        webhooks.inbound_message_received.connect(receivers.on_inbound_message,
                                                  dispatch_uid="entrypoints.inbound")
        register_source_ref_label("entrypoint", lambda pk: EntryPoint.objects.filter(
            pk=pk).values_list("name", flat=True).first() if pk.isdigit() else None)
        contact_admin_parts.register(ArrivalsContactPart())
        role_permissions_add(MARKETERS, [
            "entrypoints.add_entrypoint", "entrypoints.change_entrypoint",
            "entrypoints.view_entrypoint", "entrypoints.view_arrival",
            "entrypoints.add_adsource", "entrypoints.change_adsource",
            "entrypoints.delete_adsource", "entrypoints.view_adsource"])
        from campaigns.entrypoints.selectors import contact_arrivals_export
        from campaigns.entrypoints.services import contact_arrivals_erase
        from crm.privacy import PrivacyPart, privacy_parts

        privacy_parts.register(PrivacyPart(
            "arrivals", _("entry points arrived through"), contact_arrivals_export,
            lambda subject: contact_arrivals_erase(contact_id=subject.contact.pk)))
