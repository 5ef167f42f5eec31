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


@lru_cache(maxsize=65_536, typed=True)
def normalize_with_country(raw: str, region: str | None) -> tuple[str, str]:
    """``(E.164, ISO country)`` exactly as ``normalize_phone`` and ``country_of`` give them.

    Cached per distinct writing: lists repeat numbers (the duplicates an import reports)
    and an import tries the same cell twice when a spreadsheet dropped its ``+``.
    """
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
    if phonenumbers.is_possible_number_with_reason(number) != _R.IS_POSSIBLE:
        return None
    regions = _CODES[code]
    if len(regions) == 1:
        if not _is_valid(national, regions[0]):
            return None
        return f"+{code}{national}", regions[0]
    if not phonenumbers.is_valid_number(number):
        return None
    return f"+{code}{national}", phonenumbers.region_code_for_number(number) or ""


# The number types phonenumbers' ``_number_type_helper`` tries; a number is valid when it
# matches the general description and one of them.
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
          "uan", "voicemail", "fixed_line", "mobile")


@lru_cache(maxsize=512)
def _descriptions(region: str) -> tuple[tuple, dict[int, re.Pattern]] | None:
    """The general description as (possible lengths, pattern), and per number length one
    pattern uniting every number type of that length: compiled once per region."""
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.general_desc is None or not meta.general_desc.national_number_pattern:
        return None
    general = (frozenset(meta.general_desc.possible_length or ()),
               re.compile(meta.general_desc.national_number_pattern))
    types = [(frozenset(desc.possible_length or ()), desc.national_number_pattern)
             for desc in (getattr(meta, name, None) for name in _TYPES)
             if desc is not None and desc.national_number_pattern]
    by_length = {}
    for size in range(1, 18):
        patterns = [p for lengths, p in types if not lengths or size in lengths]
        if patterns:
            by_length[size] = re.compile("|".join(f"(?:{p})" for p in patterns))
    return general, by_length


def _is_valid(national: str, region: str) -> bool:
    """``phonenumbers.is_valid_number`` for a country code of one region, with one regular
    expression per call instead of its eleven look-ups (the bulk of an import's CPU time)."""
    descriptions = _descriptions(region)
    if descriptions is None:
        return False
    (lengths, general), by_length = descriptions
    size = len(national)
    if (lengths and size not in lengths) or general.fullmatch(national) is None:
        return False
    pattern = by_length.get(size)
    return pattern is not None and pattern.fullmatch(national) is not None
