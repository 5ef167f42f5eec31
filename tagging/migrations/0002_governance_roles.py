from django.db import migrations


def roles_create(apps, schema_editor):
    from tagging.roles import roles_sync

    roles_sync(apps)


class Migration(migrations.Migration):
    """Create the groups Tag administrators, Marketers and Agents (see tagging/roles.py)."""

    dependencies = [
        ("tagging", "0001_initial"),
        ("crm", "0002_admin_theme"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_create, migrations.RunPython.noop)]
