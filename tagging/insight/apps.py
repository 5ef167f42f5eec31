from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class InsightConfig(AppConfig):
    """The dashboard, the Monday tag health report and tag analytics."""

    name = "tagging.insight"
    verbose_name = _("Insight")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.admin import contact_admin_parts
        from tagging.insight import tasks  # noqa: F401  (registers the app's tasks)
        from tagging.insight.admin import InsightContactPart

        contact_admin_parts.register(InsightContactPart())
