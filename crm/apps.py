from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("Customers")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm import tasks  # noqa: F401  (registers the job sweeper)
        from crm.health import checks_register_defaults

        checks_register_defaults()
