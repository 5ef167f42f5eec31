import pytest

from crm.phones import InvalidPhoneNumber, country_of, normalize_phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 170 1234567", None, "+491701234567"),
        ("0170-123 45 67", "DE", "+491701234567"),  # national trunk 0
        ("0049 (170) 123.45.67", "DE", "+491701234567"),  # 00 prefix, brackets, dots
        ("00852 9123 4567", None, "+85291234567"),  # Hong Kong with 00 and no region
        ("9123 4567", "HK", "+85291234567"),
        ("+86 138 0013 8000", "DE", "+8613800138000"),  # explicit code wins over region
        ("(415) 555-2671", "US", "+14155552671"),
        ("07400 123456", "GB", "+447400123456"),
        ("+43 664 1234567", None, "+436641234567"),
    ],
)
def test_numbers_in_common_writings_become_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region", "why"),
    [
        ("", "DE", "empty"),
        ("12", "DE", "too short"),
        ("+49 170", None, "too short"),
        ("hello", "DE", "not a phone number"),
        ("+1 555 0100", None, "too short"),
        ("+49 000 00000000", None, "not a valid number"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(raw, region, why):
    with pytest.raises(InvalidPhoneNumber, match=why):
        normalize_phone(raw, region)


def test_number_without_country_code_needs_a_region(settings):
    settings.TAGWERK_DEFAULT_REGION = None
    with pytest.raises(InvalidPhoneNumber, match="no country code"):
        normalize_phone("0170 1234567")


def test_default_region_reads_national_numbers(settings):
    settings.TAGWERK_DEFAULT_REGION = "HK"
    assert normalize_phone("9123 4567") == "+85291234567"


def test_country_is_derived_from_the_number():
    assert country_of("+85291234567") == "HK"
    assert country_of("+491701234567") == "DE"
