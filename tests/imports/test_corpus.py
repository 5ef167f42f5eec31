"""Every file in the bad-file corpus gives a clear report or a refusal, never a crash."""

from __future__ import annotations

import pytest
from openpyxl import Workbook

from crm.models import Contact
from tagging.imports.models import ImportStatus
from tagging.imports.services import ImportRefused
from tests.imports.conftest import CORPUS, history_counts

pytestmark = pytest.mark.django_db


def test_mixed_file_counts_every_reason(vocabulary, marketer, run_import):
    job = run_import(CORPUS / "mixed.csv", actor=marketer)

    assert job.status == ImportStatus.DONE
    assert (job.rows, job.created, job.failed) == (10, 4, 6)
    assert job.errors == {"invalid_phone": 2, "duplicate_in_file": 1, "unknown_tag": 1,
                          "forbidden_tag": 1, "conflicting_tags": 1}
    assert set(Contact.objects.values_list("phone", flat=True)) == {
        "+4915123000001", "+4915123000002", "+4915123000003", "+4915123000009"}
    assert Contact.objects.get(phone="+4915123000001").first_name == "Anna"  # first row wins
    # VIP x3, Interesse-Sport, Interesse-Essen, Bestellt
    assert job.tags_added == 6 == history_counts(job)["added"]
    assert job.report["failure_warning"] is True


def test_failed_rows_file_has_original_columns_row_number_and_error(vocabulary, marketer,
                                                                     run_import):
    job = run_import(CORPUS / "mixed.csv", actor=marketer)

    lines = job.failed_rows.open("rb").read().decode("utf-8-sig").splitlines()
    assert lines[0] == "phone,tags,first_name,row_number,error"
    assert len(lines) == 1 + 6
    assert lines[1].startswith("12345,VIP,Xaver,5,invalid_phone: ")
    assert any(",6,duplicate_in_file: +4915123000001 is already in row 2" in x for x in lines)
    assert any("unknown_tag: The tag “Unbekannt” does not exist" in x for x in lines)


@pytest.mark.parametrize("name, phone, tag, column, value", [
    ("utf8_bom_semicolon.csv", "+4915123000002", "Interesse-Sport", "first_name", "Søren"),
    ("excel_unicode_text.txt", "+85291234567", "Interesse-Essen", "first_name", "陈美"),
    ("gb18030.csv", "+85291234567", "VIP", "city", "香港"),
    ("windows1252.csv", "+4915123000001", "VIP", "last_name", "Müller"),
])
def test_encodings_and_delimiters_are_detected(vocabulary, run_import, name, phone, tag,
                                               column, value):
    job = run_import(CORPUS / name)

    assert (job.rows, job.created, job.failed) == (2, 2, 0), job.errors
    contact = Contact.objects.get(phone=phone)
    assert getattr(contact, column) == value
    assert contact.tags.filter(name=tag).exists()


@pytest.mark.parametrize("name, message", [
    ("empty.csv", "The file is empty"),
    ("garbage.bin", "binary file"),
    ("no_phone.csv", "no phone column, so nothing was imported. Columns found: “name”, "
                     "“email”, “Label”"),
])
def test_unusable_files_are_refused_before_anything_is_written(vocabulary, run_import, name,
                                                                message):
    with pytest.raises(ImportRefused, match=message):
        run_import(CORPUS / name)

    assert Contact.objects.count() == 0
    from tagging.imports.models import ImportJob

    job = ImportJob.objects.get()
    assert job.status == ImportStatus.REFUSED and message in job.message


def test_header_only_file_reports_zero_rows(vocabulary, run_import):
    job = run_import(CORPUS / "header_only.csv")

    assert job.status == ImportStatus.DONE
    assert job.rows == 0 and job.created == 0


def test_formula_cells_are_stored_as_text_and_escaped_in_failed_rows(vocabulary, run_import):
    job = run_import(CORPUS / "formula.csv")

    assert job.created == 2
    contact = Contact.objects.get(phone="+4915123000001")
    assert contact.first_name == '=HYPERLINK("http://evil.example")'
    assert contact.notes == "@SUM(A1)"


def test_ten_megabyte_single_line_is_refused_clearly(vocabulary, run_import, tmp_path):
    path = tmp_path / "one-line.csv"
    path.write_bytes(b"phone," + b"x" * 10_000_000)

    with pytest.raises(ImportRefused, match="longer than 1 MB"):
        run_import(path)
    assert Contact.objects.count() == 0


def test_ten_megabyte_cell_fails_only_its_row(vocabulary, run_import, tmp_path):
    path = tmp_path / "big-cell.csv"
    path.write_bytes(b"phone,notes\n+4915123000001,ok\n+4915123000002," + b"y" * 10_000_000
                     + b"\n+4915123000003,ok\n")

    job = run_import(path)

    assert job.created == 2
    assert job.errors == {"unreadable_row": 1}


def test_xlsx_with_numeric_phone_cells(vocabulary, run_import, tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["Phone", "Tags", "Birth_Date"])
    sheet.append([4915123000001, "VIP, Interesse-Sport", "1990-04-01"])
    sheet.append(["0151 23000002", None, None])
    book.save(tmp_path / "contacts.xlsx")

    job = run_import(tmp_path / "contacts.xlsx")

    # Excel stores the first number as a float; it is read back as the digits it shows.
    assert (job.rows, job.created, job.failed) == (2, 2, 0)
    first = Contact.objects.get(phone="+4915123000001")
    assert str(first.birth_date) == "1990-04-01"
    assert set(first.tags.values_list("name", flat=True)) == {"VIP", "Interesse-Sport"}


def test_xlsx_number_without_trunk_zero_is_read_in_the_region(vocabulary, run_import, tmp_path):
    book = Workbook()
    book.active.append(["phone"])
    book.active.append([15123000007])  # Excel dropped the 0 of 0151 23000007
    book.save(tmp_path / "national.xlsx")

    job = run_import(tmp_path / "national.xlsx", region="DE")

    assert job.created == 1
    assert Contact.objects.get().phone == "+4915123000007"
