"""Property-based fuzzing of the import reader (issue #14 item 5): hostile files of every
kind — raw bytes, tables in mixed encodings with stray quotes, delimiters, line ends, NUL
and control characters, damaged CSV, and XLSX zips that are malformed, hostile or bombs.

The property: no crash. Every file is either read, each row parsed or failed with a
message a person can read, or refused as a whole with a readable reason. 600 generated
files here (``EXAMPLES``), plus 40 through the whole import engine.
"""

from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagging.imports.models import ConsentBasis, ImportStatus, UnknownTags
from tagging.imports.reader import UnreadableFile, open_table
from tagging.imports.rules import Column, ColumnMapping, ParsedRow, RowFailure, RowParser, TagBook
from tagging.imports.services import ImportRefused, import_create, import_run

pytestmark = pytest.mark.django_db

EXAMPLES = {"bytes": 120, "tables": 200, "damaged": 100, "xlsx": 180}
BASE = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])


def fuzz(examples: int) -> settings:
    return settings(BASE, max_examples=examples)

# --- what "readable" means -----------------------------------------------------------


def assert_readable(message: str) -> None:
    assert isinstance(message, str) and len(message) >= 20, message
    assert " " in message and "Traceback" not in message and "object at 0x" not in message
    assert "\x00" not in message


def read_everything(path: Path) -> str:
    """Open, map and parse every row as the import does; return "refused" or "read"."""
    try:
        with open_table(path) as table:
            columns = [Column(h, "unused") for h in table.headers] or [Column("", "unused")]
            columns[0] = Column(columns[0].header, "phone")  # parse every row as a contact
            if len(columns) > 1:
                columns[1] = Column(columns[1].header, "tags")
            parser = RowParser(ColumnMapping(columns), region="DE",
                               tags=TagBook(actor=None, dry_run=True, skip_unknown=True))
            for raw in table.rows():
                result = parser.parse(raw)
                assert isinstance(result, ParsedRow | RowFailure)
                assert all(isinstance(c, str) for c in raw.cells)
                if isinstance(result, RowFailure):
                    assert_readable(result.message)
                else:
                    assert "\x00" not in "".join(str(v) for v in result.facts.values())
        return "read"
    except UnreadableFile as exc:
        assert_readable(str(exc))
        return "refused"


# --- strategies ----------------------------------------------------------------------

HOSTILE = ["\"", "\"\"", ",", ";", "\t", "\n", "\r", "\r\n", "\x00", "\x01", "\x1b", "\x7f",
           "'", "=", "+49 151 2300 0001", "0151 23000002", "ü", "ß", "é", "陈", "美", "香港",
           "😀", "\ufeff", "\u200b", "\u2028", "Ã¼", "|", "，", "\\", " "]
cell = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=6)), max_size=6).map("".join)
ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "gb18030", "utf-16", "utf-16-le", "latin-1"]


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def tables(draw) -> bytes:
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    line_end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    width = draw(st.integers(1, 6))
    header = ["phone", "tags", "first_name", "notes", "Kunde seit", "Accepts SMS Marketing"]
    lines = [delimiter.join(header[:width])]
    for _ in range(draw(st.integers(0, 12))):
        cells = draw(st.lists(cell, min_size=0, max_size=width + 2))
        quoted = [f'"{c}"' if draw(st.booleans()) else c for c in cells]
        lines.append(delimiter.join(quoted))
    if draw(st.booleans()):  # one encoding for the file
        return encode(line_end.join(lines) + line_end, draw(st.sampled_from(ENCODINGS)))
    # a mix: every line in its own encoding (never UTF-16, which has no byte lines)
    mixed = ["utf-8", "cp1252", "gb18030", "latin-1"]
    return b"".join(encode(line + line_end, draw(st.sampled_from(mixed))) for line in lines)


@st.composite
def damaged(draw) -> bytes:
    """A good file with bytes inserted, removed, replaced, or cut off."""
    data = bytearray(("phone,tags,first_name\n" + "".join(
        f"+49151230000{i:02d},VIP,Name{i}\n" for i in range(8))).encode())
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        chunk = draw(st.binary(min_size=1, max_size=8))
        if action == "insert":
            data[position:position] = chunk
        elif action == "delete":
            del data[position:position + len(chunk)]
        elif action == "replace":
            data[position:position + len(chunk)] = chunk
        else:
            del data[position:]
    return bytes(data)


CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
                 b'openxmlformats.org/package/2006/content-types"><Default Extension="rels" '
                 b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                 b'<Default Extension="xml" ContentType="application/xml"/><Override PartName='
                 b'"/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument'
                 b'.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml"'
                 b' ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
                 b'worksheet+xml"/></Types>')
ROOT_RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
             b'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='
             b'"http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
             b'officeDocument" Target="xl/workbook.xml"/></Relationships>')
WORKBOOK = (b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.'
            b'openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.'
            b'openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="S" '
            b'sheetId="1" r:id="rId1"/></sheets></workbook>')
WORKBOOK_RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
                 b'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='
                 b'"http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
                 b'worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
                  b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;'
                  b'&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><worksheet xmlns='
                  b'"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
                  b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row>'
                  b'</sheetData></worksheet>')
xml_text = cell.map(lambda s: "".join(ch for ch in s if ch in "\t\n\r" or ch >= " "))


def sheet(rows: list[list[str]], *, dimension: str = "", first_row: int = 1) -> bytes:
    body = "".join(
        f'<row r="{first_row + r}">' + "".join(
            f'<c r="{chr(65 + c)}{first_row + r}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
            for c, v in enumerate(values[:26])) + "</row>" for r, values in enumerate(rows))
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    return ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.'
            f'openxmlformats.org/spreadsheetml/2006/main">{dim}<sheetData>{body}</sheetData>'
            "</worksheet>").encode("utf-8", errors="surrogatepass")


@st.composite
def workbooks(draw) -> bytes:
    rows = [["phone", "tags", "notes"],
            *draw(st.lists(st.lists(xml_text, max_size=4), max_size=8))]
    kind = draw(st.sampled_from(["plain", "dimension", "far_rows", "garbage_xml", "laughs",
                                 "missing_part", "flipped", "cut", "bomb", "declared_small",
                                 "numbers"]))
    worksheet = sheet(rows)
    if kind == "dimension":  # a declared size far past the data
        worksheet = sheet(rows, dimension="A1:XFD1048576")
    elif kind == "far_rows":  # a gap openpyxl fills with empty rows
        far = draw(st.sampled_from([500, 20_000]))
        worksheet = sheet(rows[:1]).replace(b"</sheetData>", (
            f'<row r="{far}"><c r="A{far}" t="inlineStr"><is><t>+4915123000001</t></is>'
            "</c></row></sheetData>").encode())
    elif kind == "garbage_xml":
        worksheet = draw(st.binary(max_size=200))
    elif kind == "laughs":
        worksheet = BILLION_LAUGHS
    elif kind == "numbers":
        values = draw(st.lists(st.one_of(
            st.integers(-10**20, 10**20).map(str), st.floats(allow_nan=True).map(repr),
            st.sampled_from(["INF", "-0", "1e400", "NaN", "45000.5", ""])), max_size=6))
        worksheet = ('<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
                     'spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr">'
                     '<is><t>phone</t></is></c></row>' + "".join(
                         f'<row r="{i + 2}"><c r="A{i + 2}" s="{i % 3}" t="{t}"><v>{escape(v)}'
                         f'</v></c></row>' for i, (v, t) in enumerate(
                             (v, draw(st.sampled_from(["n", "d", "b", "e", "s", "str"])))
                             for v in values)) + "</sheetData></worksheet>").encode()
    parts = {"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": ROOT_RELS,
             "xl/workbook.xml": WORKBOOK, "xl/_rels/workbook.xml.rels": WORKBOOK_RELS,
             "xl/worksheets/sheet1.xml": worksheet}
    if kind == "missing_part":
        del parts[draw(st.sampled_from(sorted(parts)))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            if kind == "bomb" and name.endswith("sheet1.xml"):
                with archive.open(name, "w") as part:  # ~2 MB of blanks, deflated ~1000×
                    part.write(data.replace(b"<sheetData>", b"<sheetData>" + b" " * (2 << 20)))
            else:
                archive.writestr(name, data)
    data = bytearray(buffer.getvalue())
    if kind == "flipped":
        for _ in range(draw(st.integers(1, 10))):
            position = draw(st.integers(0, len(data) - 1))
            data[position] ^= draw(st.integers(1, 255))
    elif kind == "cut":
        del data[draw(st.integers(4, len(data) - 1)):]
    elif kind == "declared_small":  # the directory lies about the sizes
        data = data.replace(b"xl/worksheets/sheet1.xml", b"xl/worksheets/sheet1.xml", 1)
        for index in range(len(data) - 4):
            if data[index:index + 4] == b"PK\x01\x02":  # central directory entry
                data[index + 24:index + 28] = (1).to_bytes(4, "little")  # uncompressed size
    return bytes(data)


# --- the properties -------------------------------------------------------------------


def write(tmp_path: Path, data: bytes, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_random_bytes(tmp_path):
    @fuzz(EXAMPLES["bytes"])
    @given(st.one_of(st.binary(max_size=2048),
                     st.binary(max_size=512).map(lambda b: codecs.BOM_UTF8 + b),
                     st.binary(max_size=512).map(lambda b: b"PK\x03\x04" + b),
                     st.binary(max_size=512).map(lambda b: b"phone,tags\n" + b)))
    def check(data):
        read_everything(write(tmp_path, data))

    check()


def test_tables_in_any_encoding_with_hostile_cells(tmp_path, vocabulary):
    @fuzz(EXAMPLES["tables"])
    @given(tables())
    def check(data):
        read_everything(write(tmp_path, data))

    check()


def test_damaged_csv(tmp_path, vocabulary):
    @fuzz(EXAMPLES["damaged"])
    @given(damaged())
    def check(data):
        read_everything(write(tmp_path, data))

    check()


def test_hostile_xlsx_zips(tmp_path, vocabulary):
    seen = set()

    @fuzz(EXAMPLES["xlsx"])
    @given(workbooks())
    def check(data):
        seen.add(read_everything(write(tmp_path, data, "f.xlsx")))

    check()
    assert seen == {"read", "refused"}  # both outcomes were really exercised


@pytest.mark.parametrize("row, outcome", [(1_048_576, "read"), (1_048_577, "refused")])
def test_a_row_at_or_past_excels_last_row(tmp_path, row, outcome):
    worksheet = sheet([["phone"]]).replace(b"</sheetData>", (
        f'<row r="{row}"><c r="A{row}" t="inlineStr"><is><t>+4915123000001</t></is></c>'
        "</row></sheetData>").encode())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": ROOT_RELS,
                           "xl/workbook.xml": WORKBOOK, "xl/_rels/workbook.xml.rels":
                           WORKBOOK_RELS, "xl/worksheets/sheet1.xml": worksheet}.items():
            archive.writestr(name, data)

    assert read_everything(write(tmp_path, buffer.getvalue(), "f.xlsx")) == outcome


def test_hostile_files_through_the_whole_import(tmp_path, vocabulary):
    """The engine too: a job ends done (rows counted, failures explained) or refused with
    a readable reason — never failed with an internal error."""
    outcomes = set()

    @fuzz(40)
    @given(st.one_of(tables(), damaged()))
    def check(data):
        path = write(tmp_path, data)
        try:
            job = import_create(path=path, consent_basis=ConsentBasis.OPTED_IN,
                                consent_source="fuzz", unknown_tags=UnknownTags.SKIP)
        except ImportRefused as exc:
            assert_readable(str(exc))
            return
        try:
            import_run(job=job)
        except ImportRefused as exc:
            assert_readable(str(exc))
        job.refresh_from_db()
        outcomes.add(job.status)
        assert job.status in (ImportStatus.DONE, ImportStatus.REFUSED), job.message
        if job.status == ImportStatus.DONE:
            assert job.rows == job.created + job.updated + job.unchanged + job.failed

    check()
    assert outcomes == {ImportStatus.DONE, ImportStatus.REFUSED}


def test_an_xml_entity_bomb_in_a_workbook_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in {"[Content_Types].xml": CONTENT_TYPES, "_rels/.rels": ROOT_RELS,
                           "xl/workbook.xml": WORKBOOK, "xl/_rels/workbook.xml.rels":
                           WORKBOOK_RELS, "xl/worksheets/sheet1.xml": BILLION_LAUGHS}.items():
            archive.writestr(name, data)

    assert read_everything(write(tmp_path, buffer.getvalue(), "f.xlsx")) == "refused"
