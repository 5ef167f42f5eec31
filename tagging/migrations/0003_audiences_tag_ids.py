"""PostgreSQL only: tagging_contacttagset (tag ids per contact) kept by triggers, GIN-indexed.

See tagging/tag_index.py for why. On SQLite this migration does nothing and
segments compile to EXISTS subqueries.
"""

from django.db import migrations


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from tagging.tag_index import BACKFILL_SQL, INSTALL_SQL

    schema_editor.execute(INSTALL_SQL)
    schema_editor.execute(BACKFILL_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from tagging.tag_index import UNINSTALL_SQL

    schema_editor.execute(UNINSTALL_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0002_admin_theme"),
        ("tagging", "0002_audiences_segments_bulk"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
