from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImportsConfig(AppConfig):
    """Contact lists in (CSV, TXT, XLSX) with previews, reports and undo; contacts out."""

    name = "tagging.imports"
    verbose_name = _("Imports and exports")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.admin import contact_admin_parts
        from tagging.imports import tasks  # noqa: F401  (registers the app's tasks)
        from tagging.imports.admin import ExportContactPart
        from tagging.roles import MARKETERS, TAG_ADMINISTRATORS, role_permissions_add

        contact_admin_parts.register(ExportContactPart())
        for role in (TAG_ADMINISTRATORS, MARKETERS):
            role_permissions_add(role, ["imports.add_importjob", "imports.view_importjob"])
