"""Reading import files: CSV/TXT in any common encoding and delimiter, and XLSX.

Everything streams: a file of a million rows is read one row at a time, so
memory does not grow with the file. Damage stays with the row it is in: a row
written in another encoding than the rest of the file, a cell holding a NUL byte,
a quote that does not close where its cell ends, or a line over 1 MB fails that
row alone (``RawRow.error``) and the rows after it are read as usual — nothing is
stored as mojibake and no row is swallowed by another. A file that cannot be read
at all (empty, binary, an old .xls, an XLSX that would expand past the limits)
is refused with ``UnreadableFile`` before anything is imported; its message says
what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
import zipfile
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

SAMPLE_BYTES = 64 * 1024
# A line (and so a cell) larger than this is a broken row, not data (csv's default is 128 KiB).
FIELD_LIMIT = 1024 * 1024
# A quoted cell running over more lines than this is an unclosed quote, not a long note.
MAX_SPAN = 200
MAX_COLUMNS = 1000
EXCEL_MAX_ROWS = 1_048_576
DELIMITERS = [",", ";", "\t"]
ENCODINGS = {
    "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8-sig", "utf-16": "utf-16",
    "gb18030": "gb18030", "gbk": "gb18030", "gb2312": "gb18030",
    "windows-1252": "cp1252", "cp1252": "cp1252", "latin-1": "cp1252", "latin1": "cp1252",
    "iso-8859-1": "cp1252",
}
NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "gb18030": "GB18030 (Chinese)",
         "cp1252": "Windows-1252 (Western European, Latin-1)", "utf-16": "UTF-16",
         "utf-16-le": "UTF-16", "utf-16-be": "UTF-16"}

# Why a row could not be read (RawRow.reason); counted in the import report.
ROW_UNREADABLE = "unreadable_row"
ROW_ENCODING = "wrong_encoding"
ROW_QUOTE = "unbalanced_quote"
ROW_NUL = "nul_character"

csv.field_size_limit(FIELD_LIMIT)


class UnreadableFile(ValueError):
    """The file as a whole cannot be read; nothing was imported."""


@dataclass
class RawRow:
    number: int  # spreadsheet row number: the header is row 1
    cells: list[str]
    error: str = ""  # set when the row itself could not be read
    reason: str = ROW_UNREADABLE


class Table:
    """An opened import file: its header, how it was read, and its rows (read once)."""

    def __init__(self, kind: str, headers: list[str], rows: Iterator[RawRow], *,
                 close=None, decoder: _Decoder | None = None, delimiter: str = ""):
        self.kind, self.headers, self.delimiter = kind, headers, delimiter  # kind: csv, xlsx
        self._rows, self._close, self._decoder = rows, close, decoder

    @property
    def encoding(self) -> str:
        """The file's text encoding ("" for XLSX); final once the rows are read."""
        return self._decoder.encoding if self._decoder else ""

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
    chosen = declared or detect_encoding(sample, complete=len(sample) < SAMPLE_BYTES)
    # A start in plain ASCII says nothing: the first line that is not decides.
    decided = bool(declared) or not sample.isascii()
    return _open_csv(path, chosen, decided=decided)


# --- encodings ------------------------------------------------------------------------


def detect_encoding(sample: bytes, *, complete: bool = False) -> str:
    """The text encoding of ``sample`` (the start of a file): what most of its lines are.

    ``complete`` says the sample is the whole file (its last line is not cut short).
    """
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
        raise UnreadableFile(_binary_message())
    # A text file may hold the odd control character (each fails its row); a binary file
    # is full of them.
    controls = sum(1 for b in sample if b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D))
    if controls > 8 and controls * 20 > len(sample):
        raise UnreadableFile(_binary_message())
    lines = re.split(rb"\r\n|\n|\r", sample)
    if not complete and len(lines) > 1:
        lines.pop()  # cut off in the middle, perhaps in the middle of a character
    kinds = Counter(guess_encoding(line) for line in lines)
    candidates = ["utf-8", "gb18030", "cp1252"]  # on a tie, the first wins
    best = max(candidates, key=lambda c: (kinds[c], -candidates.index(c)))
    return best if kinds[best] else "utf-8"


def _binary_message() -> str:
    return _("This looks like a binary file, not a table. Upload a CSV, TXT or XLSX file.")


def guess_encoding(line: bytes) -> str:
    """What ``line`` is most likely written in: "ascii", "utf-8", "gb18030", "cp1252", or
    "" when none of them reads it.

    UTF-8 first: Western or Chinese text is almost never valid UTF-8 by chance, while
    Windows-1252 reads nearly any bytes, so it comes last.
    """
    if line.isascii():
        return "ascii"
    try:
        line.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if looks_chinese(line):
        return "gb18030"
    try:
        line.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return ""


# Latin letters on both sides of one Chinese character: Latin-1 "Müller" read as GB18030
# ("M" + one character made of "ü" and "l" + "ler"), not Chinese text.
_PRINTABLE = re.compile(r"[\x00-\x1f\x7f]")  # what a message quoting a cell leaves out
_SANDWICH = re.compile(r"[A-Za-z][^\x00-\x7f][A-Za-z]")


def looks_chinese(line: bytes) -> bool:
    """Whether ``line`` reads as Chinese text in GB18030: it decodes, nearly every
    non-ASCII character is Chinese (or CJK punctuation), and none sits inside a Latin word."""
    try:
        text = line.decode("gb18030")
    except UnicodeDecodeError:
        return False
    wide = [ch for ch in text if ch > "\x7f"]
    if not wide:
        return False
    chinese = sum(1 for ch in wide if _is_cjk(ch))
    return chinese * 10 >= len(wide) * 9 and not _SANDWICH.search(text)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF
            or 0x2010 <= code <= 0x206F or code == 0xB7 or code >= 0x20000)


class _Decoder:
    """``decoder.line(text) -> (text, problem)`` for a non-ASCII line of a file in
    ``encoding``. Lines arrive decoded as UTF-8 with ``surrogateescape`` (bytes that are
    not UTF-8 kept as surrogates, so the exact bytes can be had back); a line in another
    encoding than the file's, or one that cannot be read, comes back readable (in its
    own encoding) with the message for its row. Until ``decided``, the first non-ASCII
    line sets the encoding (a file may start with thousands of plain rows)."""

    def __init__(self, encoding: str, *, decided: bool):
        self.encoding, self.decided = encoding, decided

    def line(self, text: str) -> tuple[str, str | None]:
        if self.encoding.startswith("utf-16"):  # read by its own decoder
            return text, ("\ufffd" in text and _(
                "This row contains bytes that are not %(enc)s text. Save the file as CSV "
                "UTF-8 and upload it again.") % {"enc": NAMES[self.encoding]}) or None
        valid_utf8 = _SURROGATE.search(text) is None
        if valid_utf8 and (self.encoding.startswith("utf-8") or not self.decided):
            self.decided = True
            return text, None
        line = text.encode("utf-8", "surrogateescape")
        if not self.decided:
            self.encoding = guess_encoding(line) or self.encoding
            self.decided = True
        if self.encoding.startswith("utf-8"):
            return _misfit(line, self.encoding)
        if self.encoding == "gb18030":
            return (line.decode("gb18030"), None) if looks_chinese(line) else _misfit(
                line, self.encoding)
        if guess_encoding(line) == "cp1252":
            return line.decode("cp1252"), None
        return _misfit(line, self.encoding)


_SURROGATE = re.compile("[\udc80-\udcff]")


def _misfit(line: bytes, encoding: str) -> tuple[str, str]:
    guess = guess_encoding(line)
    if guess in ("utf-8", "gb18030", "cp1252") and NAMES[guess] != NAMES[encoding]:
        text = line.decode(guess)
        word = re.search(r'[^\s,;"]*[^\x00-\x7f][^\s,;"]*', text)
        sample = _PRINTABLE.sub("", word.group() if word else text.strip())[:40]
        return text, _(
            "This row is not %(enc)s text like the rest of the file: it looks like %(other)s "
            "(it would read “%(sample)s”). Save the whole file in one encoding (CSV UTF-8), or "
            "correct this row in the failed-rows file and upload that.") % {
                "enc": NAMES[encoding], "other": NAMES[guess], "sample": sample}
    try:
        line.decode(encoding)
    except UnicodeDecodeError as exc:
        position, byte = exc.start + 1, line[exc.start]
    else:  # pragma: no cover - a line that decodes is never a misfit
        position, byte = 0, 0
    return line.decode(encoding, errors="replace"), _(
        "This row is not valid %(enc)s text: byte %(pos)d (0x%(byte)02X) cannot be read. Save "
        "the file as CSV UTF-8 (or choose its encoding on the form) and upload it again.") % {
            "enc": NAMES[encoding], "pos": position, "byte": byte}


# --- CSV ------------------------------------------------------------------------------


def detect_delimiter(line: str) -> str:
    """The most frequent of comma, semicolon and tab outside quotes in the header line."""
    unquoted = re.sub(r'"[^"]*"', "", line)
    counts = {d: unquoted.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


# One physical line: (line number in the file, text, (reason, message) or None).
Line = tuple[int, str, "tuple[str, str] | None"]
NUL = (ROW_NUL, "")  # a line's problem when it holds a NUL (the row's message names the column)


class _Feed:
    """The lines ``csv.reader`` reads, one at a time, from a text stream read in C; keeps
    the lines of the current record with their problems, and takes lines back to be read
    again (after an unbalanced quote). ASCII and valid UTF-8 lines, nearly all of them,
    cost a ``readline`` and two checks."""

    def __init__(self, text, decoder: _Decoder):
        self.readline, self.decoder = text.readline, decoder
        self.back: deque[Line] = deque()
        self.taken: list[Line] = []
        self.number = 0  # physical lines read so far

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.back:
            item = self.back.popleft()
        else:
            line = self.readline(FIELD_LIMIT + 1)
            if not line:
                raise StopIteration
            self.number += 1
            # The common line first, in as few steps as possible (the import's hot path).
            item = (self.number, line, None) if line.isascii() and "\x00" not in line and \
                len(line) <= FIELD_LIMIT else self._check(line)
        if len(self.taken) >= MAX_SPAN:
            raise csv.Error("a quoted cell runs over too many lines")
        self.taken.append(item)
        return item[1]

    def read_line(self) -> Line | None:
        """The next line outside any record (the header), or None at the end."""
        line = self.readline(FIELD_LIMIT + 1)
        if not line:
            return None
        self.number += 1
        return self._check(line)

    def _check(self, line: str) -> Line:
        if len(line) > FIELD_LIMIT and not line.endswith(("\n", "\r")):
            while (rest := self.readline(FIELD_LIMIT)) and not rest.endswith(("\n", "\r")):
                pass  # skip the rest: memory stays bounded whatever the line holds
            return self.number, "", (ROW_UNREADABLE, _(
                "This line is longer than 1 MB, so it is not a row of a table. Check the file "
                "around this line."))
        problem = None
        if not line.isascii():
            line, message = self.decoder.line(line)
            problem = message and (ROW_ENCODING, message)
        if problem is None and "\x00" in line:
            problem = NUL
        return self.number, line, problem

    def give_back(self, lines: list[Line]) -> None:
        self.back.extendleft(reversed(lines))


def _open_csv(path: Path, encoding: str, *, decided: bool) -> Table:
    raw = path.open("rb")
    # Bytes that are not UTF-8 survive as surrogates (the decoder gets them back): one
    # C-level reader for UTF-8, Windows-1252 and GB18030 alike, whose line ends (\n, \r)
    # are never part of a multi-byte character.
    wide = encoding.startswith("utf-16")
    text = io.TextIOWrapper(raw, encoding=encoding if wide else "utf-8",
                            errors="replace" if wide else "surrogateescape", newline="")
    decoder = _Decoder(encoding, decided=decided)
    feed = _Feed(text, decoder)
    _number, first, problem = feed.read_line() or (1, "", None)
    if problem and problem[0] == ROW_UNREADABLE:
        raw.close()
        raise UnreadableFile(_("The first line is longer than 1 MB: this is not a header row. "
                               "Check that the file is a table with one contact per line."))
    if problem and problem is not NUL:
        raw.close()
        raise UnreadableFile(
            _("The file is not valid %(enc)s text. Save it as “CSV UTF-8” (or choose its "
              "encoding on the form) and upload it again.") % {"enc": decoder.encoding})
    delimiter = detect_delimiter(first)
    try:
        header = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter), [])
    except csv.Error:  # a stray CR or quote in the header line: read it plainly
        header = [h.strip('"') for h in re.split(r"[\r\n]", first)[0].split(delimiter)]
    if header:
        header[0] = header[0].lstrip("\ufeff")
    headers = [h.strip().replace("\x00", "") for h in header]
    rows = _csv_rows(feed, delimiter, headers)
    return Table("csv", headers, rows, close=raw.close, decoder=decoder, delimiter=delimiter)


def _csv_rows(feed: _Feed, delimiter: str, headers: list[str]) -> Iterator[RawRow]:
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    number = 1
    while True:
        feed.taken = []
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error:
            if not feed.taken:
                return
            number += 1
            yield _unbalanced(number, feed, delimiter)
            reader = csv.reader(feed, delimiter=delimiter, strict=True)
            continue
        number += 1
        taken = feed.taken
        if len(taken) == 1:  # the common case, kept short: one line, nothing wrong
            if taken[0][2] is None:
                if "".join(cells).strip():  # a blank line is not a contact
                    yield RawRow(number, cells)
                continue
        elif _swallowed(cells, taken, delimiter, len(headers)):
            yield _unbalanced(number, feed, delimiter)
            continue
        problems = [line[2] for line in taken if line[2] and line[2] is not NUL]
        if problems:
            yield RawRow(number, _clean(cells), problems[0][1], problems[0][0])
        elif any(line[2] is NUL for line in taken):
            yield _nul_row(number, cells, headers)
        elif "".join(cells).strip():
            yield RawRow(number, cells)


def _swallowed(cells: list[str], taken: list[Line], delimiter: str, width: int) -> bool:
    """Whether a record over several lines is one cell that swallowed whole rows: it has
    the wrong number of cells, or a line inside it is a complete row on its own."""
    if len(cells) != width:
        return True
    return any(len(next(csv.reader([line[1]], delimiter=delimiter), [])) >= width
               for line in taken[1:])


def _unbalanced(number: int, feed: _Feed, delimiter: str) -> RawRow:
    """Fail the record's first line (its quote is the culprit) and read the lines it took
    with it again, as the rows they are."""
    first, rest = feed.taken[0], feed.taken[1:]
    feed.taken = []
    feed.give_back(rest)
    cells = _clean(first[1].rstrip("\r\n").split(delimiter))
    return RawRow(number, cells, _(
        "Line %(line)d has a quote (\") that does not close where its cell ends, so the cell "
        "would have swallowed the lines after it; they are read as rows of their own. Remove "
        "the quote or close it, and upload this row again.") % {"line": first[0]}, ROW_QUOTE)


def _clean(cells: list[str]) -> list[str]:
    """A failed row's cells without NUL bytes: they are shown in the preview and written
    to the failed-rows file, and no database stores a NUL."""
    return [c.replace("\x00", "") for c in cells]


def _nul_row(number: int, cells: list[str], headers: list[str]) -> RawRow:
    index = next(i for i, c in enumerate(cells) if "\x00" in c)
    column = headers[index] if index < len(headers) and headers[index] else str(index + 1)
    return RawRow(number, _clean(cells), _(
        "The cell in column “%(col)s” contains a NUL character (byte 0), which cannot be "
        "stored. Remove it and upload this row again.") % {"col": column}, ROW_NUL)


# --- XLSX -----------------------------------------------------------------------------


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


def check_workbook_size(path: Path) -> None:
    """Refuse a workbook that would expand past ``IMPORTS_XLSX_MAX_UNCOMPRESSED_MB``, one
    compressed more than ``IMPORTS_XLSX_MAX_RATIO`` times (a zip bomb), or whose shared
    strings (read into memory whole) pass ``IMPORTS_XLSX_MAX_SHARED_STRINGS_MB`` — from the
    zip's directory, before a byte is decompressed. (Python's zipfile never inflates an
    entry past the size its directory states.)"""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UnreadableFile(_("The file looks like an Excel workbook but cannot be opened "
                               "(%(why)s). Save it again as .xlsx or CSV.") % {"why": exc}
                             ) from None
    mb = 1024 * 1024
    limit, ratio = settings.IMPORTS_XLSX_MAX_UNCOMPRESSED_MB, settings.IMPORTS_XLSX_MAX_RATIO
    total = sum(e.file_size for e in entries)
    if total > limit * mb:
        raise UnreadableFile(_(
            "This workbook would expand to %(size)d MB when opened; the limit is %(limit)d MB. "
            "Save the sheet as CSV UTF-8 (which is read as it streams) or split it, and upload "
            "again.") % {"size": total // mb, "limit": limit})
    for entry in entries:
        if entry.file_size > mb and entry.file_size > ratio * max(entry.compress_size, 1):
            raise UnreadableFile(_(
                "This workbook is compressed %(ratio)d times (a part of %(small)s KB expands to "
                "%(big)d MB), far more than any real spreadsheet (limit %(limit)d×): it looks "
                "like a zip bomb, so it was not opened. Save the sheet as CSV UTF-8 and upload "
                "that.") % {"ratio": entry.file_size // max(entry.compress_size, 1),
                            "small": max(entry.compress_size // 1024, 1),
                            "big": entry.file_size // mb, "limit": ratio})
    shared = sum(e.file_size for e in entries if e.filename.lower().endswith("sharedstrings.xml"))
    if shared > settings.IMPORTS_XLSX_MAX_SHARED_STRINGS_MB * mb:
        raise UnreadableFile(_(
            "This workbook's texts take %(size)d MB, more than the %(limit)d MB an import reads "
            "into memory. Save the sheet as CSV UTF-8 and upload that.") % {
                "size": shared // mb, "limit": settings.IMPORTS_XLSX_MAX_SHARED_STRINGS_MB})


def _damaged(exc: Exception, row: int | None = None) -> UnreadableFile:
    why = _PRINTABLE.sub("", str(exc)).strip()[:200] or type(exc).__name__
    if row is None:
        return UnreadableFile(_("The file looks like an Excel workbook but cannot be opened "
                                "(%(why)s). Save it again as .xlsx or CSV.") % {"why": why})
    return UnreadableFile(_("The workbook is damaged at row %(row)d (%(why)s), so it was not "
                            "read. Open it in Excel, save it again as .xlsx or CSV, and upload "
                            "it again.") % {"row": row, "why": why})


def _open_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook

    check_workbook_size(path)
    # Whatever a damaged or hostile workbook makes openpyxl raise, the person gets a
    # refusal to act on, not an internal error.
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise _damaged(exc) from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # a declared size would pad every row to it
        top = sheet.iter_rows(max_col=MAX_COLUMNS, values_only=True)
        first = next(top, ())
        top.close()
        header = [_cell(v).strip().replace("\x00", "") for v in first]
    except Exception as exc:
        book.close()
        raise _damaged(exc, 1) from None
    while header and not header[-1]:
        header.pop()
    width = max(len(header), 1)

    def rows() -> Iterator[RawRow]:
        values = sheet.iter_rows(min_row=2, max_col=width, values_only=True)
        number = 1
        try:
            for number, row in enumerate(values, start=2):
                if number > EXCEL_MAX_ROWS:
                    raise UnreadableFile(_(
                        "The sheet has rows past Excel's last row (%(max)d); it was not read. "
                        "Save it again from Excel, or as CSV UTF-8.") % {"max": EXCEL_MAX_ROWS})
                if row.count(None) == len(row):
                    continue  # openpyxl fills gaps between rows with empty ones: skip fast
                cells = [_cell(v) for v in row]
                if not any(c.strip() for c in cells):
                    continue
                if any("\x00" in c for c in cells):
                    yield _nul_row(number, cells, header)
                else:
                    yield RawRow(number, cells)
        except UnreadableFile:
            raise
        except Exception as exc:  # see above
            raise _damaged(exc, number + 1) from None

    return Table("xlsx", header, rows(), close=book.close)


def header_key(name: str) -> str:
    """A column name folded for alias matching: case, width, spaces, dashes, underscores."""
    text = unicodedata.normalize("NFKC", name or "").casefold()
    return re.sub(r"[\s_\-./]+", "", text)


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
