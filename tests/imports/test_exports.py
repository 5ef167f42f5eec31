from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from crm.models import Contact
from tagging.imports.exports import contacts_export, escape_cell
from tagging.imports.models import UpdateMode
from tagging.services import tags_change
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+SUM(1)", "'+SUM(1)"), ("-2", "-2"), ("-2+3", "'-2+3"), ("@x", "'@x"),
    ("\tcmd", "'\tcmd"), ("\rcmd", "'\rcmd"), ("+4915123000001", "+4915123000001"),
    ("+49 151", "'+49 151"), ("Anna", "Anna"), (None, ""),
])
def test_escape_cell(value, expected):
    assert escape_cell(value) == expected


@pytest.fixture
def contacts(vocabulary):
    anna = ContactFactory(phone="+4915123000001", first_name="=HYPERLINK(\"x\")",
                          notes="-minus, \"quoted\"\nsecond line", city="Köln", gender="f")
    ben = ContactFactory(phone="+85291234567", first_name="陈", last_name="Mei")
    tags_change(contacts=[anna], add=[vocabulary["VIP"], vocabulary["Interesse-Sport"],
                                      vocabulary["Bestellt"]])
    tags_change(contacts=[ben], add=[vocabulary["Kaufphase-Abgeschlossen"]])
    return anna, ben


def test_csv_export_has_facts_dimension_columns_and_escaped_formulas(contacts):
    out = io.StringIO()
    count = contacts_export(queryset=Contact.objects.all(), out=out, fmt="csv")

    rows = list(csv.DictReader(io.StringIO(out.getvalue().lstrip("\ufeff"))))
    assert count == 2
    anna = next(r for r in rows if r["phone"] == "+4915123000001")
    assert anna["first_name"] == "'=HYPERLINK(\"x\")"
    assert anna["Interesse"] == "Interesse-Sport, VIP"
    assert anna["Kaufphase"] == "Bestellt"
    assert anna["consent_status"] == "opted_in"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_reads_back_through_the_import_unchanged(contacts, run_import, tmp_path, fmt):
    path = tmp_path / f"export.{fmt}"
    call_command("export_contacts", str(path), "--format", fmt)
    before = list(Contact.objects.order_by("phone").values())

    job = run_import(path, update_mode=UpdateMode.OVERWRITE)

    assert (job.rows, job.unchanged, job.failed, job.tags_added) == (2, 2, 0, 0), job.errors
    assert list(Contact.objects.order_by("phone").values()) == before


def test_export_reimports_into_an_empty_base(contacts, run_import, tmp_path):
    path = tmp_path / "export.xlsx"
    call_command("export_contacts", str(path))
    Contact.objects.all().delete()

    job = run_import(path)

    assert job.created == 2
    anna = Contact.objects.get(phone="+4915123000001")
    assert anna.first_name == "=HYPERLINK(\"x\")" and anna.city == "Köln"
    assert set(anna.tags.values_list("name", flat=True)) == {"VIP", "Interesse-Sport",
                                                             "Bestellt"}


def test_xlsx_cells_are_text_not_formulas(contacts, tmp_path):
    path = tmp_path / "e.xlsx"
    call_command("export_contacts", str(path))

    sheet = load_workbook(path).active
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert "'=HYPERLINK(\"x\")" in values
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_export_where_uses_the_segment_language(contacts, tmp_path, capsys):
    path = tmp_path / "vip.csv"
    call_command("export_contacts", str(path), "--where", '"VIP"')

    assert "1 contacts exported" in capsys.readouterr().out
    assert "+85291234567" not in path.read_text(encoding="utf-8")
