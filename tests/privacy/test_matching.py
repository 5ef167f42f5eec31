"""Recognising the erased customer in any text: hostile and random input (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.services import is_deletion_confirmation, is_deletion_keyword
from crm.models import Contact
from crm.privacy import subject_of
from tests.privacy.conftest import NATIONAL_DIGITS, WRITINGS

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
