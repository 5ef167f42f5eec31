"""Importing historical events from CSV (``import_events``).

Columns: ``phone,type,occurred_at,amount,currency,product,category,source_id``
(a header row is required; extra columns are ignored). Rows go through
``events_record`` in chunks, so facts are updated set-based and a re-import
of the same file is harmless: rows with a ``source_id`` already stored are
counted as duplicates. The report follows the contact import: counts, then
failures by reason with the first few line numbers of each.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings

from crm.event_data import EventDataError, event_from_data
from crm.events import EventIn, events_record

COLUMNS = ["phone", "type", "occurred_at", "amount", "currency", "product", "category",
           "source_id"]
REQUIRED = {"phone", "type"}
CHUNK = 5000
EXAMPLES_PER_REASON = 5
# PRODUCT.md §3: above 10% failures, fix the source and upload again.
FAILURE_WARNING_SHARE = 0.10


class EventsImportError(ValueError):
    """The file as a whole cannot be read (encoding, header); nothing was imported."""


@dataclass
class EventsImportReport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    contacts_created: int = 0
    failures: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def too_many_failures(self) -> bool:
        return bool(self.rows) and self.failed / self.rows > FAILURE_WARNING_SHARE

    def fail(self, line: int, reason: str, message: str) -> None:
        self.failures[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(f"line {line}: {message}")

    def as_dict(self) -> dict:
        return {"rows": self.rows, "stored": self.stored, "duplicates": self.duplicates,
                "failed": self.failed, "contacts_created": self.contacts_created,
                "failures_by_reason": dict(self.failures.most_common()),
                "examples": {k: v for k, v in self.examples.items() if v},
                "too_many_failures": self.too_many_failures}


def _rows(stream: io.TextIOBase) -> Iterable[tuple[int, dict]]:
    sample = stream.read(4096)
    stream.seek(0)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(stream, dialect=dialect)
    header = {(h or "").strip().lower() for h in reader.fieldnames or []}
    missing = REQUIRED - header
    if missing:
        raise EventsImportError(
            f"The header row lacks {', '.join(sorted(missing))}; expected the columns "
            f"{','.join(COLUMNS)}."
        )
    for row in reader:
        yield reader.line_num, {(k or "").strip().lower(): v for k, v in row.items()}


def events_import(*, stream: io.TextIOBase, source: str = "import",
                  progress: Callable[[int], None] | None = None) -> EventsImportReport:
    """Import the events of a CSV text stream; return the report."""
    report = EventsImportReport()
    region = settings.TAGWERK_DEFAULT_REGION
    chunk: list[tuple[int, EventIn]] = []

    def flush() -> None:
        if not chunk:
            return
        result = events_record(events=[e for _line, e in chunk], source=source, region=region)
        report.stored += len(result.stored)
        report.duplicates += result.duplicates
        report.contacts_created += result.contacts_created
        for index, message in result.failed.items():
            report.fail(chunk[index][0], message.split(":")[0], message)
        chunk.clear()
        if progress:
            progress(report.rows)

    try:
        for line, row in _rows(stream):
            report.rows += 1
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                report.rows -= 1  # blank line
                continue
            try:
                chunk.append((line, event_from_data(row, region=region)))
            except EventDataError as exc:
                report.fail(line, exc.reason, f"{exc.field}: {exc.message}")
            if len(chunk) >= CHUNK:
                flush()
        flush()
    except UnicodeDecodeError as exc:
        raise EventsImportError(f"The file is not UTF-8 text ({exc.reason}); save it as "
                                "UTF-8 CSV and try again.") from None
    return report
