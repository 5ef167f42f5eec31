from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AudiencesConfig(AppConfig):
    """Who is meant: the expression language, its SQL and in-memory answers, saved segments
    and bulk tag operations."""

    name = "tagging.audiences"
    verbose_name = _("Audiences")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.admin import contact_admin_parts
        from crm.health import register_check
        from crm.jobs import register_job_kind
        from tagging.audiences import services, tasks
        from tagging.audiences.admin import AudienceContactPart
        from tagging.audiences.health import index_check
        from tagging.audiences.language import expressions_naming
        from tagging.audiences.models import Segment
        from tagging.roles import MARKETERS, role_permissions_add
        from tagging.vocabulary import register_tag_reference

        contact_admin_parts.register(AudienceContactPart())
        # A worker that dies mid-operation: the sweeper resumes it (crm.jobs).
        register_job_kind(services.BULK_JOB, task=tasks.bulk_operation_run_task.name,
                          give_up=services.bulk_operation_give_up)
        register_check("audience_index", index_check, critical=False)
        # Saved segments that name a tag are listed on its delete confirmation.
        register_tag_reference(_("saved segments naming it"), lambda tag: expressions_naming(
            tag, Segment.objects.values_list("expression", flat=True)))
        role_permissions_add(MARKETERS, [
            "audiences.add_segment", "audiences.change_segment", "audiences.delete_segment",
            "audiences.view_segment", "audiences.view_bulkoperation"])
