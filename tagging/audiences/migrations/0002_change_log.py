"""The change log that keeps each process's audience index exact (PostgreSQL).

Statement-level triggers on ``tagging_tagassignment`` and ``crm_contact``
append one row per statement to ``audiences_tagchange``: the (contact, tag)
pairs it touched (tag 0 stands for the contact itself) and the writing
transaction's id. ``tagging.audiences.index`` reads it to catch up; the hourly
``tag_changes_prune_task`` trims it. SQLite has no index: counts run in SQL.
"""

from django.db import migrations

INSTALL_SQL = """
CREATE TABLE IF NOT EXISTS audiences_tagchange (
    id bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    contact_ids bigint[],          -- NULL: everything changed (TRUNCATE), rebuild
    tag_ids bigint[]
);
CREATE INDEX IF NOT EXISTS audiences_tagchange_xid ON audiences_tagchange (xid);
CREATE TABLE IF NOT EXISTS audiences_tagchangeprune (
    id int PRIMARY KEY,
    snapshot pg_snapshot NOT NULL,
    at timestamptz NOT NULL
);

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

-- TRUNCATE fires no row-level events (Django's test flush uses it): rebuild.
CREATE OR REPLACE FUNCTION tagwerk_tags_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audiences_tagchange (contact_ids, tag_ids) VALUES (NULL, NULL);
    RETURN NULL;
END $$;

CREATE TRIGGER tagwerk_changes_ins AFTER INSERT ON tagging_tagassignment
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_assignments_changed();
CREATE TRIGGER tagwerk_changes_del AFTER DELETE ON tagging_tagassignment
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_assignments_changed();
CREATE TRIGGER tagwerk_changes_upd AFTER UPDATE ON tagging_tagassignment
    REFERENCING OLD TABLE AS tagwerk_old NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_assignments_changed();
CREATE TRIGGER tagwerk_changes_trunc AFTER TRUNCATE ON tagging_tagassignment
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tags_truncated();
CREATE TRIGGER tagwerk_contacts_trunc AFTER TRUNCATE ON crm_contact
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_tags_truncated();
"""

# Contacts created, changed or deleted: tag 0 in the log.
CONTACTS_SQL = """
CREATE OR REPLACE FUNCTION tagwerk_contacts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO audiences_tagchange (contact_ids, tag_ids)
        SELECT array_agg(id), array_fill(0::bigint, ARRAY[count(*)::int]) FROM tagwerk_old
        HAVING count(*) > 0;
    ELSE
        INSERT INTO audiences_tagchange (contact_ids, tag_ids)
        SELECT array_agg(id), array_fill(0::bigint, ARRAY[count(*)::int]) FROM tagwerk_new
        HAVING count(*) > 0;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS tagwerk_contacts_ins ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_upd ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_del ON crm_contact;
CREATE TRIGGER tagwerk_contacts_ins AFTER INSERT ON crm_contact
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_changed();
CREATE TRIGGER tagwerk_contacts_upd AFTER UPDATE ON crm_contact
    REFERENCING NEW TABLE AS tagwerk_new
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_changed();
CREATE TRIGGER tagwerk_contacts_del AFTER DELETE ON crm_contact
    REFERENCING OLD TABLE AS tagwerk_old
    FOR EACH STATEMENT EXECUTE FUNCTION tagwerk_contacts_changed();
"""

UNINSTALL_SQL = """
DROP TRIGGER IF EXISTS tagwerk_changes_ins ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_changes_del ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_changes_upd ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_changes_trunc ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_contacts_ins ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_del ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_trunc ON crm_contact;
DROP TRIGGER IF EXISTS tagwerk_contacts_upd ON crm_contact;
DROP FUNCTION IF EXISTS tagwerk_assignments_changed();
DROP FUNCTION IF EXISTS tagwerk_contacts_changed();
DROP FUNCTION IF EXISTS tagwerk_tags_truncated();
DROP TABLE IF EXISTS audiences_tagchange;
DROP TABLE IF EXISTS audiences_tagchangeprune;
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL_SQL)
        schema_editor.execute(CONTACTS_SQL)


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNINSTALL_SQL)


class Migration(migrations.Migration):
    dependencies = [("audiences", "0001_initial"), ("crm", "0001_initial"),
                    ("tagging", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
