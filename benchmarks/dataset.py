"""The benchmark customer base: 1,000,000 contacts, ~10,000,000 assignments, 100 tags.

Built on PostgreSQL with set-based SQL in a few minutes and reused while it is
complete (``ensure_dataset`` checks a marker). Tag popularity is skewed as in
real bases: ten tags on 30–50% of contacts, twenty on ~10%, the rest rare. The
demo vocabulary's tags are among them, so the brief's expressions run as
written; single-choice dimensions hold at most one tag per contact.

Draws are deterministic: ``hashint8`` of (contact, key) gives each contact a
fixed pseudo-random number per tag or dimension.
"""

from __future__ import annotations

import time

from django.db import connection

from tagging.models import Dimension, Tag
from tagging.vocabulary import STARTER_VOCABULARY, vocabulary_ensure

CONTACTS = 1_000_000
MARKER = "bench-dataset-v2"  # v2: with assignment history

# Shares for demo tags (multi-choice); single-choice dimensions get cumulative bands.
DEMO_SHARES = {
    "VIP": 0.05, "SVIP": 0.01, "Hochwertiger Kunde": 0.20, "Historischer Bestand": 0.03,
    "Historischer Bestand - Reaktivierung erforderlich": 0.005,
    "Interesse-Make-up": 0.25, "Interesse-Sport": 0.15, "Interesse-Essen": 0.20,
    "Interesse-Reisen": 0.12, "Produktkategorie-Lippenstift": 0.08, "Interesse Produkt A": 0.05,
    "Hohe Aktivität": 0.35, "Beobachtung notwendig": 0.20, "Inaktiver Kunde": 0.45,
    "Drohender Abwanderer": 0.10, "Hohes Potenzial - Nachverfolgung erforderlich": 0.02,
    "Geburtstag bald": 0.02,
}
SINGLE_CHOICE_BANDS = {
    "Kaufphase": [("Kaufphase-Stöbern", 0.20), ("Warenkorbabbruch", 0.10), ("Bestellt", 0.05),
                  ("Kaufphase-Abgeschlossen", 0.40), ("Wiederkäufer", 0.15)],
    "Quelle": [("Quelle-Offline-Event", 0.10), ("Quelle-Gruppe", 0.20),
               ("Quelle-Offizieller Account", 0.30), ("Quelle-TikTok", 0.20),
               ("Quelle-Paketkarte", 0.08), ("Quelle-QR-Code", 0.12)],
    "Lebenszyklus": [("Neukunde", 0.05), ("Wachstum-Hohe Frequenz", 0.05),
                     ("Wachstum-Niedrige Frequenz", 0.08)],
}


def _synthetic_shares(count: int) -> list[float]:
    """Shares for the synthetic tags: a few very popular, many rare."""
    shares = []
    for i in range(count):
        if i < 6:
            shares.append(0.30 + 0.04 * i)  # 30%..50%
        elif i < 26:
            shares.append(0.08 + 0.002 * i)  # ~10%
        else:
            shares.append(0.005 + 0.0008 * (i - 26))  # rare: 0.5%..4%
    return shares


def is_ready(contacts: int = CONTACTS) -> bool:
    """True when the dataset of this size is complete (its marker row is the first contact)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM crm_contact WHERE notes = %s", [MARKER])
        if cursor.fetchone()[0] != 1:
            return False
        cursor.execute("SELECT count(*) FROM crm_contact")
        return cursor.fetchone()[0] == contacts


def ensure_dataset(contacts: int = CONTACTS, log=print) -> dict[str, int]:
    """Build the dataset unless it is already there; return its sizes."""
    if connection.vendor != "postgresql":
        raise SystemExit("The benchmark dataset needs PostgreSQL (set BENCH_DATABASE_URL).")
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not is_ready(contacts):
        build(contacts, log)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM tagging_tagassignment")
        assignments = cursor.fetchone()[0]
    return {"contacts": contacts, "assignments": assignments, "tags": Tag.objects.count()}


def build(contacts: int = CONTACTS, log=print) -> None:
    started = time.monotonic()
    log(f"Building the benchmark dataset: {contacts:,} contacts …")
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE crm_contact, tagging_tagassignment, tagging_assignmenthistory, "
            "tagging_tag, tagging_dimension RESTART IDENTITY CASCADE"
        )
    vocabulary_ensure(STARTER_VOCABULARY)
    extra_dims = [
        Dimension.objects.create(name=f"Bench Dimension {d}", colour="#868E96", order=50 + d)
        for d in range(4)
    ]
    synthetic = [
        Tag.objects.create(dimension=extra_dims[i % 4], name=f"Bench Tag {i:03d}")
        for i in range(100 - Tag.objects.count())
    ]
    shares: list[tuple[int, int, float, float]] = []  # tag, key, lo, hi
    for tag in Tag.objects.select_related("dimension"):
        if tag.name in DEMO_SHARES:
            shares.append((tag.pk, 1000 + tag.pk, 0.0, DEMO_SHARES[tag.name]))
    for dim_name, bands in SINGLE_CHOICE_BANDS.items():
        lo = 0.0
        for tag_name, share in bands:
            tag = Tag.objects.get(name=tag_name)
            shares.append((tag.pk, 5000 + tag.dimension_id, lo, lo + share))
            lo += share
        assert lo <= 1.0, dim_name
    for tag, share in zip(synthetic, _synthetic_shares(len(synthetic)), strict=True):
        shares.append((tag.pk, 1000 + tag.pk, 0.0, share))

    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            """
            INSERT INTO crm_contact (
                phone, first_name, last_name, salutation, gender, birth_date, language, country,
                city, occupation, external_label, notes, attributes, consent_status,
                consent_source, consent_at, is_blocked, purchase_count, total_spent,
                first_purchase_at, last_purchase_at, last_interaction_at, last_read_at,
                last_reply_at, created_at, joined_at, updated_at)
            SELECT
                '+49151' || lpad(i::text, 8, '0'),
                'Vorname' || (i %% 997), 'Nachname' || (i %% 1009),
                CASE WHEN i %% 5 < 3 THEN 'Frau' ELSE 'Herr' END,
                CASE WHEN i %% 5 < 3 THEN 'f' ELSE 'm' END,
                CASE WHEN random() < 0.7 THEN DATE '2008-01-01' - (random() * 18000)::int END,
                (ARRAY['de','de','de','en','zh'])[1 + (i %% 5)],
                (ARRAY['DE','DE','DE','AT','CH','HK','CN','GB'])[1 + (i %% 8)],
                '', '', '', CASE WHEN i = 1 THEN %s ELSE '' END, '{}'::jsonb,
                (ARRAY['opted_in','opted_in','opted_in','opted_in','unknown','opted_out'])
                    [1 + floor(random() * 6)::int],
                'bench', now(), random() < 0.005,
                p.n, p.n * 55.5,
                CASE WHEN p.n > 0 THEN now() - random() * interval '700 days' END,
                CASE WHEN p.n > 0 THEN now() - random() * interval '200 days' END,
                CASE WHEN random() < 0.92
                     THEN now() + ln(1 - random()) * interval '45 days' END,
                CASE WHEN random() < 0.8
                     THEN now() + ln(1 - random()) * interval '30 days' END,
                CASE WHEN random() < 0.4
                     THEN now() - random() * interval '120 days' END,
                c.at, c.at,
                now()
            FROM generate_series(1, %s) AS i
            CROSS JOIN LATERAL (
                SELECT CASE WHEN random() + 0 * i < 0.35 THEN 0
                            ELSE 1 + floor(-ln(1 - random()) * 2)::int END AS n
            ) p
            CROSS JOIN LATERAL (SELECT now() - (random() + 0 * i) * interval '730 days' AS at) c
            """,
            [MARKER, contacts],
        )
        log(f"  contacts: {time.monotonic() - started:.0f} s")
        cursor.execute(
            "CREATE TEMP TABLE bench_shares (tag_id bigint, key bigint, lo float8, hi float8)"
        )
        cursor.executemany("INSERT INTO bench_shares VALUES (%s, %s, %s, %s)", shares)
        cursor.execute(
            """
            INSERT INTO tagging_tagassignment
                (contact_id, tag_id, assigned_at, source, source_ref, expires_at)
            SELECT c.id, s.tag_id, now() - (c.id % 300) * interval '1 day',
                   'import', 'bench', NULL
            FROM crm_contact c CROSS JOIN bench_shares s
            WHERE ((hashint8(c.id * 100003 + s.key) & 2147483647) / 2147483648.0)
                  >= s.lo
              AND ((hashint8(c.id * 100003 + s.key) & 2147483647) / 2147483648.0)
                  < s.hi
            """
        )
        cursor.execute("DROP TABLE bench_shares")
        log(f"  assignments: {time.monotonic() - started:.0f} s")
        history_build(cursor)
        log(f"  history: {time.monotonic() - started:.0f} s")
        cursor.execute("VACUUM ANALYZE crm_contact")
        cursor.execute("VACUUM ANALYZE tagging_tagassignment")
    log(f"Dataset ready in {time.monotonic() - started:.0f} s.")


def history_build(cursor) -> None:
    """One "added" history row per assignment, as a base that grew through Tagwerk has:
    bulk changes are measured against a history table of realistic size (~10M rows)."""
    cursor.execute(
        """
        INSERT INTO tagging_assignmenthistory
            (contact_id, tag_id, action, reason, replaced, source_ref, operation, actor_id, at)
        SELECT contact_id, tag_id, 'added', 'import', false, 'bench',
               md5('bench' || (contact_id / 10000)::text)::uuid, NULL, assigned_at
          FROM tagging_tagassignment ORDER BY assigned_at, contact_id
        """
    )


def settle() -> None:
    """VACUUM ANALYZE the big tables, as autovacuum would after another benchmark's bulk
    inserts and deletes, so that every run starts from the same steady state."""
    with connection.cursor() as cursor:
        for table in ("crm_contact", "tagging_tagassignment", "tagging_assignmenthistory",
                      "audiences_tagchange"):
            cursor.execute(f"VACUUM ANALYZE {table}")
