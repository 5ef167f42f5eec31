"""Bulk tag change on 100,000 contacts vs the naive per-contact loop.

One ``tags_change`` call applies a tag of a single-choice dimension (so each
contact's other stage tag is replaced) and removes another tag from 100,000
contacts of the 1M dataset, writing assignment history. The naive loop —
``contact.tags.add()`` / ``.remove()`` and a history ``save()`` per row — runs on
a sample of other contacts and is scaled to 100,000. Afterwards the bulk change
is taken back with ``operation_undo`` (also timed), so the dataset stays as built.

    BENCH_DATABASE_URL=postgres://…/tagwerk_bench_governance make bench BENCH_ARGS=governance
    … BENCH_ARGS="governance --contacts=100000 --sample=2000 --repeat=2"

The bulk change runs ``--repeat`` times (first on a cold cache), each run taken
back; the best run is compared with the naive loop, whose sample is warmed first.
"""

from __future__ import annotations

import os
import time

from django.db import connection, transaction

from benchmarks.dataset import ensure_dataset, settle
from crm.models import Contact
from tagging.models import AssignmentHistory, HistoryAction, Source, Tag, TagAssignment
from tagging.services import operation_undo, tags_change

TITLE = "Governance: one bulk tag change on 100,000 contacts vs the naive loop"
ADD, REMOVE = "Bestellt", "Inaktiver Kunde"  # ADD is in the single-choice "Kaufphase"


def _option(argv: list[str], name: str, default: int) -> int:
    for arg in argv:
        if arg.startswith(f"--{name}="):
            return int(arg.split("=", 1)[1])
    return default


def _naive(contacts: list[Contact], add: Tag, remove: Tag, rivals: list[Tag]) -> dict[str, int]:
    """What a hand-written loop does: per contact, per tag, one query or save at a time."""
    counts = {"added": 0, "removed": 0, "replaced": 0}
    for contact in contacts:
        held = set(contact.tags.values_list("pk", flat=True))
        for rival in rivals:
            if rival.pk in held:
                contact.tags.remove(rival)
                AssignmentHistory(contact=contact, tag=rival, action=HistoryAction.REMOVED,
                                  reason=Source.BULK, replaced=True,
                                  operation="00000000-0000-0000-0000-000000000000").save()
                counts["replaced"] += 1
        if remove.pk in held:
            contact.tags.remove(remove)
            AssignmentHistory(contact=contact, tag=remove, action=HistoryAction.REMOVED,
                              reason=Source.BULK,
                              operation="00000000-0000-0000-0000-000000000000").save()
            counts["removed"] += 1
        if add.pk not in held:
            contact.tags.add(add, through_defaults={"source": Source.BULK})
            AssignmentHistory(contact=contact, tag=add, action=HistoryAction.ADDED,
                              reason=Source.BULK,
                              operation="00000000-0000-0000-0000-000000000000").save()
            counts["added"] += 1
    return counts


def run(argv: list[str]) -> str:
    size = _option(argv, "contacts", 100_000)
    sample = _option(argv, "sample", 2_000)
    if connection.vendor != "postgresql":
        raise SystemExit("This benchmark needs PostgreSQL (set BENCH_DATABASE_URL).")
    dataset = ensure_dataset(log=lambda *_a: None)
    settle()
    load_before = os.getloadavg()[0]
    add = Tag.objects.select_related("dimension").get(name=ADD)
    remove = Tag.objects.select_related("dimension").get(name=REMOVE)
    rivals = list(Tag.objects.filter(dimension=add.dimension).exclude(pk=add.pk))
    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True)[: size + sample])
    bulk_ids, sample_ids = ids[:size], ids[size:]
    with connection.cursor() as cursor:
        # Earlier runs leave dead rows just where this one works; start clean.
        cursor.execute("VACUUM (ANALYZE) tagging_tagassignment, tagging_assignmenthistory")

    # --- the service, committed; run twice (cold, then warm cache), each taken back ---
    runs = []
    for _round in range(_option(argv, "repeat", 2)):
        started = time.perf_counter()
        result = tags_change(contacts=bulk_ids, add=[add], remove=[remove], source=Source.BULK,
                             source_ref="bench:governance")
        bulk_s = time.perf_counter() - started
        left_over = (
            TagAssignment.objects.filter(contact_id__in=bulk_ids[:5000],
                                         tag__in=[remove, *rivals]).count(),
            TagAssignment.objects.filter(contact_id__in=bulk_ids[:5000], tag=add).count(),
        )
        history_rows = AssignmentHistory.objects.filter(operation=result.operation).count()
        started = time.perf_counter()
        undo = operation_undo(operation=result.operation)
        undo_s = time.perf_counter() - started
        runs.append((bulk_s, undo_s))
        # The history stays as the dataset built it, so runs do not measure each other.
        AssignmentHistory.objects.filter(operation__in=[result.operation, undo.operation]).delete()
    bulk_s = min(r[0] for r in runs)

    # --- the naive loop on a sample, rolled back (which only flatters it) --------
    with transaction.atomic():
        contacts = list(Contact.objects.filter(pk__in=sample_ids))
        # Warm the sample's pages as the bulk run's second round was warm.
        list(TagAssignment.objects.filter(contact_id__in=sample_ids).values_list("tag_id"))
        started = time.perf_counter()
        naive = _naive(contacts, add, remove, rivals)
        naive_s = time.perf_counter() - started
        transaction.set_rollback(True)
    naive_scaled = naive_s / max(len(contacts), 1) * size
    speedup = naive_scaled / bulk_s

    return "\n".join([
        f"## {TITLE}",
        "",
        f"Dataset: {dataset['contacts']:,} contacts, {dataset['assignments']:,} assignments, "
        f"{dataset['tags']} tags (PostgreSQL). One call on the first {size:,} contacts: add "
        f"“{ADD}” (single-choice dimension “{add.dimension.name}”, so other stage tags are "
        f"replaced) and remove “{REMOVE}”, history written.",
        "",
        "| | contacts | added | removed | replaced | seconds | per 100k |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| `tags_change` (set-based, committed; best of "
        f"{', '.join(f'{r[0]:.2f}' for r in runs)} s) | {result.contacts:,} | "
        f"{result.added:,} | {result.removed:,} | {result.replaced:,} | {bulk_s:.2f} | "
        f"{bulk_s / size * 100_000:.2f} |",
        f"| naive loop (`contact.tags.add/remove`, history `.save()` per row; sample, "
        f"rolled back) | {len(contacts):,} | {naive['added']:,} | {naive['removed']:,} | "
        f"{naive['replaced']:,} | {naive_s:.2f} | {naive_scaled:.1f} (scaled) |",
        f"| `operation_undo` of the bulk change | {undo.contacts:,} | {undo.added:,} | "
        f"{undo.removed:,} | – | {', '.join(f'{r[1]:.2f}' for r in runs)} | |",
        "",
        f"**Speed-up: {speedup:,.0f}×** (goal ≥ 50×); bulk change {bulk_s:.2f} s "
        f"(goal < 5 s). History rows written by the bulk change: {history_rows:,}. Check on "
        f"5,000 changed contacts: {left_over[0]} removed/replaced tags left, "
        f"{left_over[1]:,} hold “{ADD}”. Load average (2 cores, shared): "
        f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after.",
    ])
