from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImportsConfig(AppConfig):
    """Contact lists in (CSV, TXT, XLSX) with previews, reports and undo; contacts out."""

    name = "tagging.imports"
    verbose_name = _("Imports and exports")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.admin import contact_admin_parts
        from crm.jobs import register_job_kind
        from tagging.imports import services, tasks
        from tagging.imports.admin import ExportContactPart
        from tagging.roles import MARKETERS, TAG_ADMINISTRATORS, role_permissions_add

        contact_admin_parts.register(ExportContactPart())
        # A worker that dies mid-import or mid-undo: the sweeper resumes it (crm.jobs).
        register_job_kind(services.IMPORT_JOB, task=tasks.import_run_task.name,
                          give_up=services.import_give_up)
        register_job_kind(services.IMPORT_UNDO_JOB, task=tasks.import_undo_task.name,
                          give_up=services.import_undo_give_up)
        for role in (TAG_ADMINISTRATORS, MARKETERS):
            role_permissions_add(role, ["imports.add_importjob", "imports.view_importjob"])
