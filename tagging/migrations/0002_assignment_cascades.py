"""Deleting a contact or a tag deletes its assignments, also outside Django (PostgreSQL).

``TagAssignment`` has no database foreign keys: PostgreSQL checks a foreign
key with a row lock per inserted row at commit, about a fifth of a
100,000-contact bulk change. Instead every writer inserts assignments only for
contacts it reads in the same statement (``tagging.services``); Django's delete
collector removes a contact's or tag's assignments before the row itself; these
statement-level triggers do the same for deletes made outside Django; and
``tagging.audiences.index.changes_prune`` sweeps the rare assignment a writer
added while its contact or tag was being deleted.
"""

from django.db import migrations

CASCADE_SQL = """
CREATE OR REPLACE FUNCTION tagwerk_contacts_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tagging_tagassignment a USING tagwerk_old o WHERE a.contact_id = o.id;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS tagwerk_contacts_cascade ON crm_contact;
CREATE TRIGGER tagwerk_contacts_cascade AFTER DELETE ON crm_contact
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_cascade();

CREATE OR REPLACE FUNCTION tagwerk_tags_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tagging_tagassignment a USING tagwerk_old o WHERE a.tag_id = o.id;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS tagwerk_tags_cascade ON tagging_tag;
CREATE TRIGGER tagwerk_tags_cascade AFTER DELETE ON tagging_tag
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tags_cascade();
"""

UNDO_SQL = """
DROP TRIGGER IF EXISTS tagwerk_contacts_cascade ON crm_contact;
DROP FUNCTION IF EXISTS tagwerk_contacts_cascade();
DROP TRIGGER IF EXISTS tagwerk_tags_cascade ON tagging_tag;
DROP FUNCTION IF EXISTS tagwerk_tags_cascade();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CASCADE_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNDO_SQL)


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial"), ("tagging", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
