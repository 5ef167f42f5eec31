"""The fast path for tag conditions: each contact's tag ids as a PostgreSQL array.

``crm_contact.tag_ids bigint[]`` mirrors ``tagging_tagassignment`` and carries a
GIN index, so ``"A" AND "B" AND NOT "C"`` becomes one indexed test on the
contact row (``tag_ids @> '{a,b}' AND NOT tag_ids && '{c}'``) instead of one
semi-join per tag over ten million assignment rows.

Why a database trigger keeps it correct, not ``tags_change``: every writer of
assignments — ``tags_change``, undo, expiry, cascading deletes, a tag merge, a
raw ``UPDATE`` in a data migration — is covered without any of them knowing.
The triggers are statement-level with transition tables, so a bulk change of
100,000 assignments costs one set-based ``UPDATE`` per statement, and they
apply the difference to the row they lock (``tag_ids || new``, ``tag_ids -
old``), which stays right when two transactions change one contact at once.

The column is not a field of ``crm.Contact`` (``crm`` knows nothing of tags);
it exists only on PostgreSQL. SQLite uses the ``EXISTS`` reference compilation
in ``tagging.segments``, which is also what the property test compares with.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, Expression

COLUMN = "tag_ids"

INSTALL_SQL = """
ALTER TABLE crm_contact ADD COLUMN IF NOT EXISTS tag_ids bigint[] NOT NULL DEFAULT '{}';

CREATE OR REPLACE FUNCTION tagwerk_tag_ids_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE crm_contact c
       SET tag_ids = ARRAY(SELECT DISTINCT x FROM unnest(c.tag_ids || n.ids) x ORDER BY x)
      FROM (SELECT contact_id, array_agg(tag_id) ids FROM tagwerk_new GROUP BY contact_id) n
     WHERE c.id = n.contact_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tagwerk_tag_ids_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE crm_contact c
       SET tag_ids = ARRAY(SELECT x FROM unnest(c.tag_ids) x WHERE x <> ALL(o.ids) ORDER BY x)
      FROM (SELECT contact_id, array_agg(tag_id) ids FROM tagwerk_old GROUP BY contact_id) o
     WHERE c.id = o.contact_id;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION tagwerk_tag_ids_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only pairs that really moved (an update of expires_at changes nothing here).
    UPDATE crm_contact c
       SET tag_ids = ARRAY(SELECT x FROM unnest(c.tag_ids) x WHERE x <> ALL(o.ids) ORDER BY x)
      FROM (SELECT contact_id, array_agg(tag_id) ids
              FROM (SELECT contact_id, tag_id FROM tagwerk_old
                    EXCEPT SELECT contact_id, tag_id FROM tagwerk_new) gone
             GROUP BY contact_id) o
     WHERE c.id = o.contact_id;
    UPDATE crm_contact c
       SET tag_ids = ARRAY(SELECT DISTINCT x FROM unnest(c.tag_ids || n.ids) x ORDER BY x)
      FROM (SELECT contact_id, array_agg(tag_id) ids
              FROM (SELECT contact_id, tag_id FROM tagwerk_new
                    EXCEPT SELECT contact_id, tag_id FROM tagwerk_old) came
             GROUP BY contact_id) n
     WHERE c.id = n.contact_id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tagwerk_tag_ids_ins ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_del ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_upd ON tagging_tagassignment;
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
UPDATE crm_contact c SET tag_ids = s.ids
  FROM (SELECT contact_id, array_agg(tag_id ORDER BY tag_id) ids
          FROM tagging_tagassignment GROUP BY contact_id) s
 WHERE c.id = s.contact_id;
CREATE INDEX IF NOT EXISTS crm_contact_tag_ids_gin ON crm_contact USING gin (tag_ids)
    WITH (fastupdate = on);
ANALYZE crm_contact;
"""

UNINSTALL_SQL = """
DROP TRIGGER IF EXISTS tagwerk_tag_ids_ins ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_del ON tagging_tagassignment;
DROP TRIGGER IF EXISTS tagwerk_tag_ids_upd ON tagging_tagassignment;
DROP FUNCTION IF EXISTS tagwerk_tag_ids_added();
DROP FUNCTION IF EXISTS tagwerk_tag_ids_removed();
DROP FUNCTION IF EXISTS tagwerk_tag_ids_moved();
DROP INDEX IF EXISTS crm_contact_tag_ids_gin;
ALTER TABLE crm_contact DROP COLUMN IF EXISTS tag_ids;
"""


def available() -> bool:
    """True where the array column exists (PostgreSQL after the migration)."""
    return connection.vendor == "postgresql"


class TagIdsTest(Expression):
    """``<contact>.tag_ids @> ids`` (holds all) or ``&& ids`` (holds any), alias-safe.

    The table alias is taken from the query the expression is resolved in and
    follows relabelling, so the test stays on the right contact when the
    queryset becomes a subquery.
    """

    output_field = BooleanField()
    conditional = True
    OPERATORS = {"all": "@>", "any": "&&"}

    def __init__(self, mode: str, tag_ids, alias: str | None = None):
        super().__init__(output_field=BooleanField())
        self.mode, self.tag_ids, self.alias = mode, sorted(set(tag_ids)), alias

    def __repr__(self) -> str:
        return f"TagIdsTest({self.mode!r}, {self.tag_ids!r})"

    def resolve_expression(self, query=None, allow_joins=True, reuse=None, summarize=False,
                           for_save=False):
        clone = self.copy()
        clone.alias = query.get_initial_alias()
        return clone

    def relabeled_clone(self, change_map):
        clone = self.copy()
        clone.alias = change_map.get(self.alias, self.alias)
        return clone

    def get_group_by_cols(self):
        return []

    def as_sql(self, compiler, connection):
        column = f"{compiler.quote_name_unless_alias(self.alias)}.{COLUMN}"
        return f"{column} {self.OPERATORS[self.mode]} %s::bigint[]", [self.tag_ids]

    def as_sqlite(self, compiler, connection):  # pragma: no cover - guarded by available()
        raise NotImplementedError("tag_ids exists only on PostgreSQL")
