"""Issue #14 item 5, “silent import damage”: each file seen damaging data on main.

Every test here failed on main before the reader was rebuilt: mixed encodings were
stored as mojibake, an unbalanced quote swallowed rows, an XLSX bomb was opened,
and one NUL byte refused a whole file.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile

import pytest
from openpyxl import Workbook

from crm.models import Contact
from tagging.imports.models import ImportJob, ImportStatus
from tagging.imports.services import ImportRefused

pytestmark = pytest.mark.django_db


def names() -> dict[str, str]:
    return dict(Contact.objects.values_list("phone", "first_name"))


def failed_rows(job) -> list[list[str]]:
    text = job.failed_rows.open("rb").read().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_rows_in_another_encoding_fail_by_name_instead_of_turning_into_mojibake(
        vocabulary, run_import):
    content = (b"phone,first_name\n"
               + "+4915123000001,Jürgen\n".encode()
               + "+4915123000002,Müller\n".encode("latin-1")
               + "+4915123000003,陈美\n".encode("gb18030")
               + "+4915123000004,Zoë\n".encode())

    job = run_import(content)

    # The file is mostly UTF-8: those rows are read as written, the others fail.
    assert names() == {"+4915123000001": "Jürgen", "+4915123000004": "Zoë"}
    assert (job.created, job.failed, job.errors) == (2, 2, {"wrong_encoding": 2})
    rows = failed_rows(job)
    # The failed-rows file shows the rows readable (so it can be fixed and uploaded).
    assert rows[1][:3] == ["+4915123000002", "Müller", "3"]
    assert rows[1][3].startswith("wrong_encoding: This row is not UTF-8 text")
    assert "looks like Windows-1252" in rows[1][3] and "“Müller”" in rows[1][3]
    assert rows[2][:3] == ["+4915123000003", "陈美", "4"]
    assert "looks like GB18030" in rows[2][3]


def test_a_latin1_file_with_a_utf8_row_keeps_the_file_encoding_and_fails_the_row(
        vocabulary, run_import):
    content = (b"phone;first_name\n"
               + "+4915123000001;Jürgen\n".encode("latin-1")
               + "+4915123000002;Müller\n".encode("latin-1")
               + "+4915123000003;Søren\n".encode())

    job = run_import(content)

    assert names() == {"+4915123000001": "Jürgen", "+4915123000002": "Müller"}
    assert job.errors == {"wrong_encoding": 1}
    assert "looks like UTF-8" in failed_rows(job)[1][-1]


def test_an_unbalanced_quote_fails_its_row_with_the_line_and_keeps_the_rows_after_it(
        vocabulary, run_import):
    content = ('phone,first_name,tags\n'
               '+4915123000001,"Anna,VIP\n'
               '+4915123000002,Ben,VIP\n'
               '+4915123000003,Cem,VIP\n')

    job = run_import(content)

    assert names() == {"+4915123000002": "Ben", "+4915123000003": "Cem"}
    assert (job.rows, job.failed, job.errors) == (3, 1, {"unbalanced_quote": 1})
    assert failed_rows(job)[1][-2:] == ["2", failed_rows(job)[1][-1]]
    assert "Line 2 has a quote" in failed_rows(job)[1][-1]


def test_a_quote_closed_rows_later_is_caught_too(vocabulary, run_import):
    content = ('phone,first_name,tags\n'
               '+4915123000001,"Anna,VIP\n'
               '+4915123000002,Ben,VIP\n'
               '+4915123000003,Cem",VIP\n'
               '+4915123000004,Dora,VIP\n')

    job = run_import(content)

    # The closing quote of line 4 sits inside an unquoted cell, where it is a character.
    assert names() == {"+4915123000002": "Ben", "+4915123000003": 'Cem"',
                       "+4915123000004": "Dora"}
    assert job.errors == {"unbalanced_quote": 1}


def test_a_real_multi_line_cell_is_still_one_cell(vocabulary, run_import):
    content = ('phone,first_name,notes,tags\n'
               '+4915123000001,Anna,"first line\nsecond line, with a comma",VIP\n'
               '+4915123000002,Ben,,VIP\n')

    job = run_import(content)

    assert (job.created, job.failed) == (2, 0)
    assert Contact.objects.get(phone="+4915123000001").notes == (
        "first line\nsecond line, with a comma")


def write_bomb(path, megabytes: int) -> None:
    """A valid-looking workbook whose sheet is ``megabytes`` of spaces, deflated ~1000×."""
    book = Workbook()
    book.active.append(["phone"])
    book.active.append(["+4915123000001"])
    book.save(path)
    with zipfile.ZipFile(path) as source:
        parts = {i.filename: source.read(i) for i in source.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            if name != "xl/worksheets/sheet1.xml":
                target.writestr(name, data)
                continue
            head, tail = data.split(b"<sheetData>")
            with target.open(name, "w", force_zip64=True) as sheet:
                sheet.write(head + b"<sheetData>")
                block = b" " * (1 << 20)
                for _ in range(megabytes):
                    sheet.write(block)
                sheet.write(tail)


def test_an_xlsx_bomb_is_refused_before_it_is_opened(vocabulary, run_import, tmp_path):
    path = tmp_path / "bomb.xlsx"
    write_bomb(path, 300)
    assert path.stat().st_size < 1_000_000

    started = time.monotonic()
    with pytest.raises(ImportRefused, match="looks like a zip bomb"):
        run_import(path)

    assert time.monotonic() - started < 5
    assert ImportJob.objects.get().status == ImportStatus.REFUSED
    assert Contact.objects.count() == 0


def test_an_xlsx_over_the_size_limit_is_refused(vocabulary, run_import, tmp_path, settings):
    settings.IMPORTS_XLSX_MAX_UNCOMPRESSED_MB = 2
    path = tmp_path / "big.xlsx"
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["phone", "notes"])
    for i in range(30_000):
        sheet.append([f"+49151230{i:05d}", f"note {i} " * 3])
    book.save(path)

    with pytest.raises(ImportRefused, match=r"would expand to \d+ MB .* limit is 2 MB"):
        run_import(path)


def test_one_nul_byte_fails_its_row_not_the_file(vocabulary, run_import):
    content = b"phone,first_name\n+4915123000001,An\x00na\n+4915123000002,Ben\n"

    job = run_import(content)

    assert job.status == ImportStatus.DONE
    assert names() == {"+4915123000002": "Ben"}
    assert job.errors == {"nul_character": 1}
    assert "“first_name” contains a NUL character" in failed_rows(job)[1][-1]


def test_one_nul_byte_in_a_short_file_is_not_taken_for_a_binary_file(vocabulary, run_import):
    job = run_import(b"phone\n+4915123000001\x00\n+4915123000002\n")

    assert (job.status, job.created, job.errors) == (ImportStatus.DONE, 1,
                                                     {"nul_character": 1})
