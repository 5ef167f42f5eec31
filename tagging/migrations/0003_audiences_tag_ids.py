"""PostgreSQL only: tagging_contacttagset (tag ids per contact) kept by triggers, GIN-indexed.

Superseded by 0008 (per-tag bitmaps fed by a change log, see tagging/bitmaps.py).
The SQL is frozen here so that the migration history replays as it ran.
On SQLite this migration does nothing.
"""

from django.db import migrations

_ADD = """
    INSERT INTO tagging_contacttagset AS t (contact_id, tag_ids)
    SELECT contact_id, array_agg(DISTINCT tag_id ORDER BY tag_id) FROM {source}
     GROUP BY contact_id
    ON CONFLICT (contact_id) DO UPDATE
       SET tag_ids = ARRAY(SELECT DISTINCT x FROM unnest(t.tag_ids || EXCLUDED.tag_ids) x
                           ORDER BY x);
"""
_REMOVE = """
    UPDATE tagging_contacttagset t
       SET tag_ids = ARRAY(SELECT x FROM unnest(t.tag_ids) x WHERE x <> ALL(o.ids) ORDER BY x)
      FROM (SELECT contact_id, array_agg(tag_id) ids FROM {source} GROUP BY contact_id) o
     WHERE t.contact_id = o.contact_id;
    DELETE FROM tagging_contacttagset
     WHERE tag_ids = '{{}}' AND contact_id IN (SELECT contact_id FROM {source});
"""
INSTALL_SQL = f"""
CREATE TABLE IF NOT EXISTS tagging_contacttagset (
    contact_id bigint PRIMARY KEY,
    tag_ids bigint[] NOT NULL
);

CREATE OR REPLACE FUNCTION tagwerk_tag_ids_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_ADD.format(source="tagwerk_new")}
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tagwerk_tag_ids_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{_REMOVE.format(source="tagwerk_old")}
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tagwerk_tag_ids_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only pairs that really moved (an update of expires_at changes nothing here).
{_REMOVE.format(source="(SELECT contact_id, tag_id FROM tagwerk_old EXCEPT "
                       "SELECT contact_id, tag_id FROM tagwerk_new) AS gone")}
{_ADD.format(source="(SELECT contact_id, tag_id FROM tagwerk_new EXCEPT "
                    "SELECT contact_id, tag_id FROM tagwerk_old) AS came")}
    RETURN NULL;
END $$;

-- TRUNCATE fires no DELETE trigger (Django's test flush and the benchmark builder use it).
CREATE OR REPLACE FUNCTION tagwerk_tag_ids_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE tagging_contacttagset;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tagwerk_tag_ids_ins ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_del ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_upd ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_trunc ON tagging_tagassignment;
CREATE TRIGGER tagwerk_tag_ids_trunc AFTER TRUNCATE ON tagging_tagassignment
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tag_ids_truncated();
CREATE TRIGGER tagwerk_tag_ids_ins AFTER INSERT ON tagging_tagassignment
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tag_ids_added();
CREATE TRIGGER tagwerk_tag_ids_del AFTER DELETE ON tagging_tagassignment
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tag_ids_removed();
CREATE TRIGGER tagwerk_tag_ids_upd AFTER UPDATE ON tagging_tagassignment
    REFERENCING OLD TABLE AS tagwerk_old NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tag_ids_moved();
"""
BACKFILL_SQL = """
TRUNCATE tagging_contacttagset;
INSERT INTO tagging_contacttagset (contact_id, tag_ids)
SELECT contact_id, array_agg(tag_id ORDER BY tag_id) FROM tagging_tagassignment
 GROUP BY contact_id;
CREATE INDEX IF NOT EXISTS tagging_contacttagset_gin ON tagging_contacttagset
    USING gin (tag_ids);
ANALYZE tagging_contacttagset;
"""
UNINSTALL_SQL = """
DROP TRIGGER IF EXISTS tagwerk_tag_ids_ins ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_del ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_upd ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_trunc ON tagging_tagassignment;
DROP FUNCTION IF EXISTS tagwerk_tag_ids_truncated();
DROP FUNCTION IF EXISTS tagwerk_tag_ids_added();
DROP FUNCTION IF EXISTS tagwerk_tag_ids_removed();
DROP FUNCTION IF EXISTS tagwerk_tag_ids_moved();
DROP TABLE IF EXISTS tagging_contacttagset;
-- An earlier draft of this branch kept the array on crm_contact itself.
DROP INDEX IF EXISTS crm_contact_tag_ids_gin;
ALTER TABLE crm_contact DROP COLUMN IF EXISTS tag_ids;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(INSTALL_SQL)
    schema_editor.execute(BACKFILL_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(UNINSTALL_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0002_admin_theme"),
        ("tagging", "0002_audiences_segments_bulk"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
