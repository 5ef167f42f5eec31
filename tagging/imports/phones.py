"""A faster ``crm.phones.normalize_phone`` for imports of a million rows.

``phonenumbers.parse`` spends most of its time on the raw text. For the plain
writings that fill real files (``+49 176 …``, ``0176-…``, ``0049 …``) the
country code and national number can be read off the digits directly and
only the validity check is left to ``phonenumbers``. Everything else —
letters, extensions, a trunk ``0`` after the country code, countries with
national-prefix rewriting — goes to ``normalize_phone`` itself, which also
writes every error message. ``tests/imports/test_phones.py`` checks that both
agree on random input.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber

from crm.phones import _SEPARATORS, country_of, normalize_phone

_R = phonenumbers.ValidationResult
_CODES = phonenumbers.COUNTRY_CODE_TO_REGION_CODE


@lru_cache(maxsize=512)
def _simple_prefix(region: str) -> tuple[str, re.Pattern | None] | None:
    """(national prefix, international prefix pattern) when the region's rules are plain."""
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.national_prefix_transform_rule:
        return None
    prefix = meta.national_prefix or ""
    parsing = meta.national_prefix_for_parsing
    if parsing is not None and parsing != prefix:
        return None
    idd = re.compile(meta.international_prefix) if meta.international_prefix else None
    return prefix, idd


def _split_international(digits: str) -> tuple[int, str] | None:
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in _CODES:
            return code, digits[size:]
    return None


def normalize_with_country(raw: str, region: str | None) -> tuple[str, str]:
    """``(E.164, ISO country)`` exactly as ``normalize_phone`` and ``country_of`` give them."""
    fast = _fast(raw, region)
    if fast is not None:
        return fast
    e164 = normalize_phone(raw, region)
    return e164, country_of(e164)


def _fast(raw: str, region: str | None) -> tuple[str, str] | None:
    text = _SEPARATORS.sub("", str(raw or "")).strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        digits = text[1:]
        if not digits.isdigit() or len(digits) < 4 or digits[0] == "0":
            return None
        split = _split_international(digits)
        if split is None:
            return None
        code, national = split
        main = phonenumbers.region_code_for_country_code(code)
        rules = _simple_prefix(main)
        if rules is None or (rules[0] and national.startswith(rules[0])):
            return None
    else:
        if not region or not text.isdigit():
            return None
        rules = _simple_prefix(region)
        if rules is None or not rules[0] or not text.startswith(rules[0]):
            return None
        if rules[1] is not None and rules[1].match(text):
            return None
        code = phonenumbers.country_code_for_region(region)
        national = text[len(rules[0]):]
    if not national or national.startswith("0") or len(national) > 17:
        return None
    number = PhoneNumber(country_code=code, national_number=int(national))
    if phonenumbers.is_possible_number_with_reason(number) not in (
            _R.IS_POSSIBLE,) or not phonenumbers.is_valid_number(number):
        return None
    regions = _CODES[code]
    country = regions[0] if len(regions) == 1 else (
        phonenumbers.region_code_for_number(number) or "")
    return f"+{code}{national}", country
