"""Contact exports to CSV and XLSX that a spreadsheet cannot turn against its user.

Streams in chunks of contacts (constant memory, whatever the selection), one
column per dimension listing its tags, and reads back through the import
unchanged: ``tagging.imports.rules`` undoes the formula escaping (``crm.csvsafe``, the
writer of every export).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import IO

from django.db.models import QuerySet

from crm.csvsafe import SafeWriter, csv_lines, escape_cell, xlsx_write
from crm.models import Contact
from tagging.models import Dimension, Tag, TagAssignment

CHUNK = 2_000
FACTS = ["phone", "first_name", "last_name", "salutation", "gender", "birth_date", "language",
         "city", "occupation", "external_label", "notes", "country", "consent_status",
         "consent_source", "is_blocked", "joined_at"]


def export_header(dimensions: list[Dimension]) -> list[str]:
    return [*FACTS, *(d.name for d in dimensions)]


def export_rows(queryset: QuerySet[Contact]) -> Iterator[list[str]]:
    """The header, then one row per contact, read in chunks by primary key."""
    dimensions = list(Dimension.objects.order_by("order", "name"))
    position = {d.pk: i for i, d in enumerate(dimensions)}
    tags = {t.pk: t for t in Tag.objects.all()}
    yield export_header(dimensions)
    base = queryset.order_by("pk")
    last = 0
    while True:
        chunk = list(base.filter(pk__gt=last).values("pk", *FACTS)[:CHUNK])
        if not chunk:
            return
        last = chunk[-1]["pk"]
        held: dict[int, list[list[str]]] = defaultdict(lambda: [[] for _ in dimensions])
        for contact_id, tag_id in (
            TagAssignment.objects.filter(contact_id__in=[c["pk"] for c in chunk])
            .values_list("contact_id", "tag_id")
        ):
            tag = tags[tag_id]
            held[contact_id][position[tag.dimension_id]].append(tag.name)
        for contact in chunk:
            facts = [_fact(contact[name]) for name in FACTS]
            per_dimension = held.get(contact["pk"]) or [[] for _ in dimensions]
            yield [escape_cell(v) for v in facts] + [
                escape_cell(", ".join(sorted(names))) for names in per_dimension]


def _fact(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def export_csv_lines(queryset: QuerySet[Contact]) -> Iterator[str]:
    """CSV text line by line (UTF-8 with BOM so Excel reads the accents), for streaming."""
    return csv_lines(export_rows(queryset))


def contacts_export(*, queryset: QuerySet[Contact], out: IO, fmt: str = "csv") -> int:
    """Write ``queryset`` to ``out`` (text for csv, binary for xlsx); return the row count."""
    if fmt == "csv":
        writer, count = SafeWriter(out, bom=True), -1
        for count, row in enumerate(export_rows(queryset)):  # noqa: B007
            writer.writerow(row)
        return count
    if fmt == "xlsx":
        return xlsx_write(export_rows(queryset), out, title="Contacts") - 1
    raise ValueError(f"Unknown export format {fmt!r}; use csv or xlsx.")
