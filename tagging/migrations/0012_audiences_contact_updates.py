"""PostgreSQL only: an UPDATE of a contact is logged for the in-memory contact columns.

See tagging/bitmaps.py. On SQLite this migration does nothing.
"""

from django.db import migrations


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from tagging.bitmaps import CONTACTS_SQL

        schema_editor.execute(CONTACTS_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS tagwerk_contacts_upd ON crm_contact;")


class Migration(migrations.Migration):
    dependencies = [("tagging", "0011_merge_imports_audiences")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
