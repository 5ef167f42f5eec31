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
        _register_privacy()


def _register_privacy() -> None:
    """The imports a contact came from: exported, scrubbed on erasure; files pruned."""
    from crm.privacy import PrivacyPart, Retention, privacy_parts, register_retention
    from tagging.imports.selectors import contact_imports_count, contact_imports_export
    from tagging.imports.services import (
        contact_imports_erase,
        failed_row_files_prune,
        import_files_prune,
    )

    privacy_parts.register(PrivacyPart(
        "imports", _("imports"), contact_imports_export,
        lambda subject: contact_imports_erase(subject=subject), count=contact_imports_count))
    register_retention(Retention(
        "import_files", _("uploaded import files"),
        _("Whole customer lists as uploaded; the import's report and undo do not need "
          "them."), import_files_prune))
    register_retention(Retention(
        "failed_row_files", _("failed-rows files of imports"),
        _("The rows an import refused, to fix and upload again; nobody needs them later."),
        failed_row_files_prune))
