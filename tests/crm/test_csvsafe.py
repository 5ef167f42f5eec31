"""The one writer of every export (``crm.csvsafe``): formula cells escaped, numbers kept."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from crm.csvsafe import SafeWriter, csv_lines, escape_cell, xlsx_write

HOSTILE = ["=HYPERLINK(\"http://evil\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
           "\t=1", "\r=1", "=1+1"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_cell_gets_an_apostrophe(value):
    assert escape_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["+4915123456789", "+85291234567", "-12", "+3.50", "0", "Anna",
                                   "a=b", "", "陈美"])
def test_numbers_and_plain_text_stay_as_they_are(value):
    assert escape_cell(value) == value


def test_csv_writer_and_lines_escape_every_cell():
    out = io.StringIO()
    SafeWriter(out, bom=True).writerow(["=1+1", "+4915123456789", 7, None])
    assert out.getvalue() == "\ufeff'=1+1,+4915123456789,7,\r\n"
    assert "".join(csv_lines([["@x", -3]], bom=False)) == "'@x,-3\r\n"


def test_xlsx_keeps_numbers_and_stores_formulas_as_text():
    out = io.BytesIO()
    assert xlsx_write([["=1+1", "+4915123456789", 3, Decimal("2.50"), True]], out) == 1
    row = next(load_workbook(io.BytesIO(out.getvalue())).active.iter_rows(values_only=True))
    assert row == ("'=1+1", "+4915123456789", 3, 2.5, True)


def test_csv_reads_back_as_the_spreadsheet_shows_it():
    out = io.StringIO()
    SafeWriter(out).writerow(HOSTILE)
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'" + v for v in HOSTILE]
