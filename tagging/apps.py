from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class TaggingConfig(AppConfig):
    name = "tagging"
    verbose_name = _("Tagging")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Governance roles: created by a migration, kept in step after every migrate.
        from tagging.roles import roles_sync_after_migrate

        post_migrate.connect(roles_sync_after_migrate, sender=self,
                             dispatch_uid="tagging.roles_sync")
