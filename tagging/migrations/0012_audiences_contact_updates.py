"""PostgreSQL only: an UPDATE of a contact is logged for the in-memory contact columns.

See tagging/bitmaps.py. On SQLite this migration does nothing.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION tagwerk_contacts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(id), array_fill(0::bigint, ARRAY[count(*)::int]) FROM tagwerk_old
        HAVING count(*) > 0;
    ELSE
        INSERT INTO tagging_tagchange (contact_ids, tag_ids)
        SELECT array_agg(id), array_fill(0::bigint, ARRAY[count(*)::int]) FROM tagwerk_new
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS tagwerk_contacts_upd ON crm_contact;
CREATE TRIGGER tagwerk_contacts_upd AFTER UPDATE ON crm_contact
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_changed();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TRIGGER IF EXISTS tagwerk_contacts_upd ON crm_contact;")


class Migration(migrations.Migration):
    dependencies = [("tagging", "0011_merge_imports_audiences")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
