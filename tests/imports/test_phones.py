"""The import's fast phone reading agrees with crm.phones on any input."""

from hypothesis import given, settings
from hypothesis import strategies as st

from crm.phones import InvalidPhoneNumber, country_of, normalize_phone
from tagging.imports.phones import normalize_with_country

REGIONS = ["DE", "AT", "CH", "HK", "CN", "GB", "US", "FR", "IT", "IN", "AR", "BR", "AU", "JP"]
PREFIXES = ["+", "00", "0", "", "+49", "0049", "+852", "+1", "+44 (0)", "011", "+86", "+39"]


def reference(raw, region):
    try:
        e164 = normalize_phone(raw, region)
    except InvalidPhoneNumber:
        return None
    return e164, country_of(e164)


def ours(raw, region):
    try:
        return normalize_with_country(raw, region)
    except InvalidPhoneNumber:
        return None


@settings(max_examples=800, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), body=st.text("0123456789 -", min_size=3, max_size=16),
       region=st.sampled_from(REGIONS))
def test_fast_reading_equals_normalize_phone(prefix, body, region):
    raw = prefix + body
    assert ours(raw, region) == reference(raw, region)


def test_common_writings():
    for raw in ["+49 176 90000001", "0176-90000001", "0049 (176) 90000001", "0176.9000.0001"]:
        assert normalize_with_country(raw, "DE") == ("+4917690000001", "DE")
    assert normalize_with_country("+1 212 555 0100", "DE") == reference("+1 212 555 0100", "DE")


@settings(max_examples=1500, deadline=None)
@given(region=st.sampled_from([r for r in REGIONS if r not in ("GB", "US")]),
       national=st.from_regex(r"[1-9][0-9]{3,13}", fullmatch=True))
def test_lean_validity_check_equals_phonenumbers(region, national):
    import phonenumbers

    from tagging.imports.phones import _is_valid

    code = phonenumbers.country_code_for_region(region)
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    assert _is_valid(national, region) == phonenumbers.is_valid_number(number)
