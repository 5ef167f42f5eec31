"""The change log says what each statement did to the pairs it lists (PostgreSQL).

``op``: ``I`` (the pairs were inserted), ``D`` (deleted), ``U`` (updated: old and
new pairs together); NULL for contacts (tag 0) and for rows written before this
migration. A catch-up applies a pair that one statement alone touched since the
reader's snapshot straight from ``op`` (that statement's effect is the pair's truth
now), and re-reads the assignments only for pairs touched more than once or by an
update: after a bulk change of 100,000 contacts that is no lookup at all.
"""

from django.db import migrations

INSTALL_SQL = """
ALTER TABLE audiences_tagchange ADD COLUMN IF NOT EXISTS op "char";

CREATE OR REPLACE FUNCTION tagwerk_assignments_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO audiences_tagchange (contact_ids, tag_ids, op)
        SELECT array_agg(contact_id), array_agg(tag_id), 'U'
          FROM (SELECT contact_id, tag_id FROM tagwerk_old UNION
                SELECT contact_id, tag_id FROM tagwerk_new) pairs HAVING count(*) > 0;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO audiences_tagchange (contact_ids, tag_ids, op)
        SELECT array_agg(contact_id), array_agg(tag_id), 'I' FROM tagwerk_new
        HAVING count(*) > 0;
    ELSE
        INSERT INTO audiences_tagchange (contact_ids, tag_ids, op)
        SELECT array_agg(contact_id), array_agg(tag_id), 'D' FROM tagwerk_old
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
"""

# As audiences.0002_change_log installed it.
UNINSTALL_SQL = """
CREATE OR REPLACE FUNCTION tagwerk_assignments_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO audiences_tagchange (contact_ids, tag_ids)
        SELECT array_agg(contact_id), array_agg(tag_id)
          FROM (SELECT contact_id, tag_id FROM tagwerk_old UNION
                SELECT contact_id, tag_id FROM tagwerk_new) pairs HAVING count(*) > 0;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO audiences_tagchange (contact_ids, tag_ids)
        SELECT array_agg(contact_id), array_agg(tag_id) FROM tagwerk_new HAVING count(*) > 0;
    ELSE
        INSERT INTO audiences_tagchange (contact_ids, tag_ids)
        SELECT array_agg(contact_id), array_agg(tag_id) FROM tagwerk_old HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
ALTER TABLE audiences_tagchange DROP COLUMN IF EXISTS op;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNINSTALL_SQL)


class Migration(migrations.Migration):
    dependencies = [("audiences", "0003_index_snapshot")]

    operations = [migrations.RunPython(install, uninstall)]
