"""PostgreSQL only: replace the trigger-kept tag-set array table by a change log.

The change log feeds the per-process tag bitmaps (see tagging/bitmaps.py). On
SQLite this migration does nothing.
"""

import importlib

from django.db import migrations

old = importlib.import_module("tagging.migrations.0003_audiences_tag_ids")


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from tagging.bitmaps import CONTACTS_SQL, INSTALL_SQL

    schema_editor.execute(old.UNINSTALL_SQL)
    schema_editor.execute(INSTALL_SQL)
    schema_editor.execute(CONTACTS_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from tagging.bitmaps import UNINSTALL_SQL

    schema_editor.execute(UNINSTALL_SQL)
    schema_editor.execute(old.INSTALL_SQL)
    schema_editor.execute(old.BACKFILL_SQL)


class Migration(migrations.Migration):
    dependencies = [("tagging", "0007_merge_rules")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
