"""The audience index's stored snapshot (PostgreSQL): parts of bytes by name, and the
horizon the change log was last pruned below.

Written by ``tagging.audiences.index.snapshot_save`` (through ``snapshot.store``),
read by a process starting its index. No compression (``STORAGE EXTERNAL``): the
parts are bitmaps and numeric columns, and reading them fast is the point.
SQLite has no index, so no table.
"""

from django.db import migrations

INSTALL_SQL = """
CREATE TABLE IF NOT EXISTS audiences_indexsnapshot (
    part text PRIMARY KEY,
    data bytea NOT NULL
);
ALTER TABLE audiences_indexsnapshot ALTER COLUMN data SET STORAGE EXTERNAL;
-- When it was written: the hourly prune deletes a snapshot no process can use any more.
ALTER TABLE audiences_indexsnapshot ADD COLUMN IF NOT EXISTS saved_at timestamptz NOT NULL
    DEFAULT now();
-- The horizon the prune last deleted below: a stored snapshot older than it cannot catch up.
ALTER TABLE audiences_tagchangeprune ADD COLUMN IF NOT EXISTS deleted_below xid8;
"""

UNINSTALL_SQL = """
DROP TABLE IF EXISTS audiences_indexsnapshot;
ALTER TABLE audiences_tagchangeprune DROP COLUMN IF EXISTS deleted_below;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNINSTALL_SQL)


class Migration(migrations.Migration):
    dependencies = [("audiences", "0002_change_log")]

    operations = [migrations.RunPython(install, uninstall)]
