from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class TaggingConfig(AppConfig):
    """The tag vocabulary: dimensions, tags, assignments, governance and the agent profile.

    Its capabilities are apps of their own inside this package (audiences,
    imports, rules, insight, demo); they depend on this one, never the reverse.
    """

    name = "tagging"
    verbose_name = _("Tagging")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from crm.admin import contact_admin_parts
        from crm.tokens import dimension_catalog_register
        from tagging import tasks  # noqa: F401  (registers the app's tasks)
        from tagging.admin.contacts import TagsContactPart
        from tagging.roles import roles_sync_after_migrate

        # Governance roles: created by a migration, kept in step after every migrate.
        post_migrate.connect(roles_sync_after_migrate, sender=self,
                             dispatch_uid="tagging.roles_sync")
        contact_admin_parts.register(TagsContactPart())
        # API tokens name the dimensions they may change (crm cannot import tagging).
        from tagging.token_dimensions import CATALOG

        dimension_catalog_register(CATALOG)
        _register_privacy()


def _register_privacy() -> None:
    """A contact's tags and their history: exported on request, deleted on erasure."""
    from crm.privacy import PrivacyPart, privacy_parts
    from tagging.selectors import (
        contact_tag_history_count,
        contact_tag_history_export,
        contact_tags_count,
        contact_tags_export,
    )
    from tagging.services import contact_tags_erase

    privacy_parts.register(PrivacyPart(
        "tags", _("tags"), contact_tags_export,
        lambda subject: contact_tags_erase(contact_id=subject.contact.pk),
        count=contact_tags_count))
    # Erased together with the tags above: this part's eraser has nothing left to do.
    privacy_parts.register(PrivacyPart(
        "tag_history", _("tag history"), contact_tag_history_export, lambda subject: 0,
        count=contact_tag_history_count))
