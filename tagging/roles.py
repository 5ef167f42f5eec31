"""The three roles of tag governance, as Django groups.

Groups hold model-wide permissions only. An Agent's right to apply the tags of
one dimension is a django-guardian object permission on that dimension,
granted on the dimension's “Object permissions” page (or with
``guardian.shortcuts.assign_perm``), never stored on contacts.

Each app names what its roles may do from its ``AppConfig.ready()`` with
``role_permissions_add`` (this module knows only the vocabulary's own).
``roles_sync`` runs after every ``migrate`` (``post_migrate``), so a permission
added later reaches existing installations. It only adds: a permission an
operator gave a group by hand stays.
"""

from __future__ import annotations

from django.apps import apps as global_apps

TAG_ADMINISTRATORS = "Tag administrators"
MARKETERS = "Marketers"
AGENTS = "Agents"

ROLES: dict[str, list[str]] = {
    TAG_ADMINISTRATORS: [
        "tagging.add_dimension", "tagging.change_dimension", "tagging.delete_dimension",
        "tagging.view_dimension",
        "tagging.add_tag", "tagging.change_tag", "tagging.delete_tag", "tagging.view_tag",
        "tagging.define_dimension_tags",
        "tagging.view_tagversion", "tagging.view_assignmenthistory",
        "crm.view_contact", "crm.erase_contact",
    ],
    MARKETERS: [
        "tagging.apply_dimension_tags",
        "tagging.view_dimension", "tagging.view_tag",
        "tagging.view_tagversion", "tagging.view_assignmenthistory",
        "crm.view_contact", "crm.change_contact", "crm.change_consent", "crm.export_contacts",
    ],
    AGENTS: [
        # Tags only in the dimensions granted per object (apply_dimension_tags).
        "crm.view_contact", "crm.change_contact",
    ],
}


def role_permissions_add(role: str, permissions: list[str]) -> None:
    """Let ``role`` do ``permissions`` (``"app_label.codename"``); call from ``ready()``."""
    wanted = ROLES[role]
    wanted += [p for p in permissions if p not in wanted]


def _permission_name(app_label: str, codename: str) -> str:
    """The name Django itself gives the permission (so create_permissions finds it later)."""
    action, _sep, model_name = codename.partition("_")
    for model in global_apps.get_app_config(app_label).get_models():
        opts = model._meta
        custom = dict(opts.permissions)
        if codename in custom:
            return str(custom[codename])
        if model_name == opts.model_name and action in opts.default_permissions:
            return f"Can {action} {opts.verbose_name_raw}"
    raise LookupError(f"Unknown permission {app_label}.{codename}")


def _model_of(app_label: str, codename: str) -> str:
    for model in global_apps.get_app_config(app_label).get_models():
        opts = model._meta
        if codename in dict(opts.permissions) or codename.partition("_")[2] == opts.model_name:
            return opts.model_name
    raise LookupError(f"Unknown permission {app_label}.{codename}")


def roles_sync(apps=global_apps) -> None:
    """Create the groups and give each the permissions of ``ROLES``; safe to repeat.

    Permissions are created here if ``migrate`` has not made them yet.
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    for group_name, perms in ROLES.items():
        group, _created = Group.objects.get_or_create(name=group_name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            content_type, _ = ContentType.objects.get_or_create(
                app_label=app_label, model=_model_of(app_label, codename)
            )
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type, codename=codename,
                defaults={"name": _permission_name(app_label, codename)[:255]},
            )
            wanted.append(permission)
        group.permissions.add(*wanted)


def roles_sync_after_migrate(sender, apps=global_apps, **kwargs) -> None:
    """``post_migrate`` receiver: keep the groups in step with ``ROLES``."""
    if apps.is_installed("tagging") and apps.is_installed("crm"):
        roles_sync(apps)
