"""The one CSV/XLSX writer of every export: cells a spreadsheet would run as a formula are
escaped (CSV injection, OWASP).

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading apostrophe, which spreadsheets show as text and hide. Decided: a cell that is
a plain number — an E.164 phone number such as ``+4915123456789``, ``-12`` or ``+3.50`` —
is left alone, because a number cannot run anything and an apostrophe would spoil the
phone numbers every export carries. Real numbers (``int``, ``float``, ``Decimal``) stay
numbers in XLSX. ``tagging.imports.rules.unescape`` undoes the apostrophe, so an export
reads back unchanged.

The standard library's ``csv`` and openpyxl do the writing; only the escaping is ours,
because neither library offers it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A plain number, signed or not: E.164 phone numbers, amounts, counts.
NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
BOM = "\ufeff"  # Excel reads UTF-8 (umlauts, 汉字) only with it


def escape_cell(value: Any) -> str:
    """A cell as text, with a leading apostrophe when a spreadsheet would run it."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_START) and not NUMBER.match(text):
        return "'" + text
    return text


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return escape_cell(value) if value is None else value
    if isinstance(value, int | float | Decimal):
        return value
    return escape_cell(value)


class SafeWriter:
    """``csv.writer`` whose ``writerow`` escapes every cell; ``out`` is any text stream
    (a file, an ``HttpResponse``)."""

    def __init__(self, out: IO[str] | Any, *, bom: bool = False):
        if bom:
            out.write(BOM)
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([escape_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[Any]], *, bom: bool = True) -> Iterator[str]:
    """Escaped CSV text line by line, for a ``StreamingHttpResponse``."""
    writer = csv.writer(_Echo())
    if bom:
        yield BOM
    for row in rows:
        yield writer.writerow([escape_cell(v) for v in row])


def xlsx_write(rows: Iterable[Iterable[Any]], out: IO[bytes], *, title: str = "Sheet") -> int:
    """Write ``rows`` as one sheet of an XLSX workbook to ``out``; return the rows written.

    openpyxl stores a string that starts with ``=`` as a formula: every text cell is
    escaped like a CSV cell. ``write_only`` keeps the rows on disk, not in memory.
    """
    from openpyxl import Workbook  # imported here: only exports need it

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    count = 0
    for count, row in enumerate(rows, start=1):  # noqa: B007
        sheet.append([_xlsx_cell(v) for v in row])
    book.save(out)
    return count
