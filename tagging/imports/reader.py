"""Reading import files: CSV/TXT in any common encoding and delimiter, and XLSX.

Everything streams: a file of a million rows is read one row at a time, so
memory does not grow with the file. ``open_table`` refuses files it cannot
read with ``UnreadableFile``, whose message says what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.translation import gettext as _

SAMPLE_BYTES = 64 * 1024
# A cell larger than this is a broken row, not data (csv's own default is 128 KiB).
FIELD_LIMIT = 1024 * 1024
DELIMITERS = [",", ";", "\t"]
ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8-sig", "utf-16": "utf-16",
    "gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030",
    "windows-1252": "cp1252", "cp1252": "cp1252", "latin-1": "cp1252", "iso-8859-1": "cp1252",
}

csv.field_size_limit(FIELD_LIMIT)


class UnreadableFile(ValueError):
    """The file as a whole cannot be read; nothing was imported."""


@dataclass
class RawRow:
    number: int  # spreadsheet row number: the header is row 1
    cells: list[str]
    error: str = ""  # set when the row itself could not be read


@dataclass
class Table:
    """An opened import file: its header, how it was read, and its rows (read once)."""

    kind: str  # "csv" or "xlsx"
    headers: list[str]
    encoding: str = ""
    delimiter: str = ""
    _rows: Iterator[RawRow] = field(default=iter(()), repr=False)
    _close: object = field(default=None, repr=False)

    def rows(self) -> Iterator[RawRow]:
        return self._rows

    def close(self) -> None:
        if callable(self._close):
            self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_table(path: str | Path, *, encoding: str = "") -> Table:
    """Open ``path`` for reading; detect its kind, encoding and delimiter unless declared."""
    path = Path(path)
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if not sample.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise UnreadableFile(_("The file is empty. Upload a file with a header row and at least "
                               "one row of contacts."))
    if sample.startswith(b"PK\x03\x04"):
        return _open_xlsx(path)
    if sample.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableFile(_("This is an old Excel file (.xls). Save it as .xlsx or as CSV "
                               "UTF-8 and upload it again."))
    declared = ENCODINGS.get(encoding.strip().lower()) if encoding else None
    if encoding and not declared:
        raise UnreadableFile(_("Unknown encoding “%(enc)s”; use one of: %(known)s.")
                             % {"enc": encoding, "known": ", ".join(sorted(ENCODINGS))})
    chosen = declared or detect_encoding(sample)
    return _open_csv(path, chosen)


def detect_encoding(sample: bytes) -> str:
    """Guess the text encoding of ``sample`` (the start of a file)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    zeros = sample.count(b"\x00")
    if zeros > len(sample) // 4:
        # UTF-16 without BOM: every ASCII character comes with a zero byte.
        even, odd = sample[0::2].count(b"\x00"), sample[1::2].count(b"\x00")
        if odd > len(sample) // 3 and even < odd // 10:
            return "utf-16-le"
        if even > len(sample) // 3 and odd < even // 10:
            return "utf-16-be"
        raise UnreadableFile(_("This looks like a binary file, not a table. Upload a CSV, TXT "
                               "or XLSX file."))
    controls = sum(1 for b in sample if b < 0x20 and b not in (0x09, 0x0A, 0x0D))
    if controls > len(sample) // 50:
        raise UnreadableFile(_("This looks like a binary file, not a table. Upload a CSV, TXT "
                               "or XLSX file."))
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if _looks_chinese(sample):
        return "gb18030"
    return "cp1252"


def _looks_chinese(sample: bytes) -> bool:
    """GB18030 text has its high bytes in pairs; Western single-byte text mostly alone."""
    try:
        text = sample.decode("gb18030", errors="strict")
    except UnicodeDecodeError:
        text = sample[:-3].decode("gb18030", errors="replace")
    runs = [len(m) for m in re.findall(rb"[\x80-\xff]+", sample)]
    if not runs:
        return False
    odd = sum(1 for r in runs if r % 2)
    cjk = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f"
              or "\uff00" <= ch <= "\uffef")
    return odd <= len(runs) // 10 and cjk >= len(runs) // 2


def detect_delimiter(line: str) -> str:
    """The most frequent of comma, semicolon and tab outside quotes in the header line."""
    unquoted = re.sub(r'"[^"]*"', "", line)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _open_csv(path: Path, encoding: str) -> Table:
    raw = path.open("rb")
    text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
    try:
        first = text.readline(FIELD_LIMIT)
    except UnicodeDecodeError:
        raw.close()
        raise UnreadableFile(
            _("The file is not valid %(enc)s text. Save it as “CSV UTF-8” (or choose its "
              "encoding on the form) and upload it again.") % {"enc": encoding}) from None
    if len(first) >= FIELD_LIMIT:
        raw.close()
        raise UnreadableFile(_("The first line is longer than 1 MB: this is not a header row. "
                               "Check that the file is a table with one contact per line."))
    delimiter = detect_delimiter(first)
    header = next(csv.reader([first], delimiter=delimiter), [])
    if header:
        header[0] = header[0].lstrip("\ufeff")
    reader = csv.reader(text, delimiter=delimiter)

    def rows() -> Iterator[RawRow]:
        number = 1
        while True:
            number += 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RawRow(number, [], _("The row cannot be read: %(why)s.") % {"why": exc})
                continue
            except UnicodeDecodeError:
                yield RawRow(number, [], _("The rest of the file is not valid %(enc)s text; "
                                           "reading stopped here.") % {"enc": encoding})
                return
            if not any(c.strip() for c in cells):
                continue  # a blank line keeps its number but is not a contact
            yield RawRow(number, cells)

    return Table("csv", [h.strip() for h in header], encoding, delimiter, rows(), raw.close)


class NumberCell(str):
    """Digits that were a number in the spreadsheet: Excel drops a phone's ``+`` and leading
    ``0`` from such cells, so the phone rules try both readings."""


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float) and float(value).is_integer():
        return NumberCell(int(value))
    if hasattr(value, "isoformat"):
        text = value.isoformat()
        return text[:10] if text.endswith("T00:00:00") else text
    return str(value)


def _open_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
        sheet = book.worksheets[0]
        values = sheet.iter_rows(values_only=True)
        header = [_cell(v).strip() for v in next(values, ())]
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, IndexError) as exc:
        raise UnreadableFile(
            _("The file looks like an Excel workbook but cannot be opened (%(why)s). Save it "
              "again as .xlsx or CSV.") % {"why": exc}) from None
    while header and not header[-1]:
        header.pop()

    def rows() -> Iterator[RawRow]:
        for number, row in enumerate(values, start=2):
            cells = [_cell(v) for v in row]
            if any(c.strip() for c in cells):
                yield RawRow(number, cells)

    return Table("xlsx", header, "", "", rows(), book.close)


def header_key(name: str) -> str:
    """A column name folded for alias matching: case, width, spaces, dashes, underscores."""
    text = unicodedata.normalize("NFKC", name or "").casefold()
    return re.sub(r"[\s_\-.]+", "", text)



class Batches:
    """``items`` in lists of ``size``, one list ahead on request.

    ``read_ahead()`` produces the next list now — the import calls it while PostgreSQL
    writes the current batch (``tags_change_pairs(meanwhile=…)``), so reading and parsing
    overlap the database's work on one thread. An error while reading ahead is raised by
    the ``take()`` that would have returned those rows, after the batch before is done.
    """

    def __init__(self, items: Iterator, size: int):
        self.items, self.size = items, size
        self._ahead: list | None = None
        self._error: Exception | None = None

    def read_ahead(self) -> None:
        if self._ahead is None and self._error is None:
            try:
                self._ahead = list(itertools.islice(self.items, self.size))
            except Exception as error:  # raised by the next take()
                self._error = error

    def take(self) -> list:
        self.read_ahead()
        if self._error is not None:
            raise self._error
        taken, self._ahead = self._ahead, None
        return taken
