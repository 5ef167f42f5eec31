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
        # rules (issue 6): event rules react to recorded events; the admin for rules.
        from crm.events import events_recorded
        from tagging.rules import admin as _rules_admin  # noqa: F401
        from tagging.rules.receivers import on_events_recorded

        events_recorded.connect(on_events_recorded, dispatch_uid="tagging.rules.events")
        # Saved segments and rules that name a tag are listed on its delete confirmation.
        from tagging.models import Segment
        from tagging.rules.models import Rule
        from tagging.segments import expressions_naming
        from tagging.vocabulary import register_tag_reference

        register_tag_reference(_("saved segments naming it"), lambda tag: expressions_naming(
            tag, Segment.objects.values_list("expression", flat=True)))
        register_tag_reference(_("rules whose condition names it"), lambda tag: expressions_naming(
            tag, Rule.objects.exclude(segment="").values_list("segment", flat=True)))
