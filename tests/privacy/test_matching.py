"""Recognising the erased customer in any text: hostile and random input (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.services import is_deletion_confirmation, is_deletion_keyword
from crm.models import Contact
from crm.privacy import subject_of
from tests.privacy.conftest import NATIONAL_DIGITS, PHONE, WRITINGS

SUBJECT = subject_of(Contact(pk=1, phone="+4915123987654", first_name="Zorbalina",
                             last_name="Quxworth"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20)


def _strings(value):
    """Every string of a JSON value: keys and leaves."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)


@given(before=st.text(max_size=40), after=st.text(max_size=40),
       writing=st.sampled_from(WRITINGS))
def test_the_number_is_found_in_any_writing_anywhere_in_a_text(before, after, writing):
    assert SUBJECT.matches(before + writing + after)


@given(value=json_values, writing=st.sampled_from(WRITINGS))
@settings(max_examples=200)
def test_scrubbed_json_never_names_the_number(value, writing):
    planted = {"rows": [value, f"Tel. {writing}", {"phone": writing}], writing: value,
               "note": f"ruft an: {writing}", "nested": {"deeper": [value, writing]},
               "as_number": int(NATIONAL_DIGITS)}
    scrubbed = SUBJECT.scrub(planted)
    json.dumps(scrubbed)  # still JSON
    assert not any(SUBJECT.matches(text) for text in _strings(scrubbed))
    assert NATIONAL_DIGITS not in json.dumps(scrubbed)


@given(value=json_values)
def test_scrub_leaves_json_without_the_subject_as_it_was(value):
    if not SUBJECT.matches(json.dumps(value, ensure_ascii=False)):
        assert SUBJECT.scrub(value) == value


@given(text=st.text(max_size=200))
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # reads only
def test_keyword_checks_take_any_text(db, text):
    assert is_deletion_keyword(text) in (True, False)
    assert is_deletion_confirmation(text) in (True, False)


@pytest.mark.parametrize("encoding", ["cp1252", "gb18030", "utf-16"])
def test_erasure_finds_the_row_in_a_stored_file_in_any_encoding_a_marketer_uploads(
        db, tmp_path, encoding):
    from tagging.imports.services import _file_rows_erase

    contact = Contact.objects.create(phone=PHONE, first_name="Jürgen", last_name="Müller")
    rows = ["telefon;vorname;nachname;stadt", "0151 23987654;Jürgen;Müller;Köln",
            "0170 1234567;Zoë;Weiß;Düsseldorf", "0171 7654321;丽;王;上海"]
    if encoding == "cp1252":
        rows.pop()  # Windows-1252 has no Chinese
    upload = tmp_path / "liste.csv"
    upload.write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))

    assert _file_rows_erase(upload, subject_of(contact)) == 1
    left = upload.read_bytes().decode(encoding).splitlines()
    assert left == [rows[0], *rows[2:]]  # the others kept as they were written
