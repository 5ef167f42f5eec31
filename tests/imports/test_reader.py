import pytest

from tagging.imports.reader import UnreadableFile, detect_delimiter, open_table
from tagging.imports.rules import map_columns


def rows_of(path, **kw):
    with open_table(path, **kw) as table:
        return table.headers, [r.cells for r in table.rows()], table.encoding


def test_utf16_without_bom_is_detected(tmp_path):
    path = tmp_path / "u.txt"
    path.write_bytes("phone\tname\n+4915123000001\tZoë\n".encode("utf-16-le"))

    headers, rows, encoding = rows_of(path)

    assert (headers, rows, encoding) == (["phone", "name"], [["+4915123000001", "Zoë"]],
                                         "utf-16-le")


def test_declared_encoding_wins_and_unknown_is_refused(tmp_path):
    path = tmp_path / "w.csv"
    path.write_bytes("phone;city\n+4915123000001;Köln\n".encode("cp1252"))

    assert rows_of(path, encoding="Windows-1252")[1] == [["+4915123000001", "Köln"]]
    with pytest.raises(UnreadableFile, match="Unknown encoding"):
        rows_of(path, encoding="ebcdic")


def test_wrong_declared_encoding_is_refused_clearly(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes("手机号,标签\n".encode("gb18030"))

    with pytest.raises(UnreadableFile, match="not valid utf-8 text"):
        rows_of(path, encoding="utf-8")


def test_old_excel_is_refused(tmp_path):
    path = tmp_path / "old.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 600)

    with pytest.raises(UnreadableFile, match=r"old Excel file \(.xls\)"):
        rows_of(path)


def test_broken_xlsx_is_refused(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"nonsense" * 50)

    with pytest.raises(UnreadableFile, match="cannot be opened"):
        rows_of(path)


@pytest.mark.parametrize("line, expected", [
    ("phone,tags", ","), ("phone;tags", ";"), ("phone\ttags", "\t"), ("phone", ","),
    ('"a,b";c;d', ";"),
])
def test_delimiter_detection(line, expected):
    assert detect_delimiter(line) == expected


@pytest.mark.django_db
def test_aliases_map_case_insensitively(make_dimension):
    make_dimension(name="Kaufphase")
    mapping = map_columns(["TELEFONNUMMER", "Label-Name", "手机号", "Kaufphase", "consent_source",
                           "Lieblingsfarbe"])

    assert [c.target for c in mapping.columns] == ["phone", "tags", "phone", "tags",
                                                   "ignored", "unused"]
    assert map_columns(["wa_id", "Farbe"], attributes=True).columns[1].target == "attribute"
