"""Phone numbers: the contact's identity, always stored in E.164."""

from __future__ import annotations

import re

import phonenumbers
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

_SEPARATORS = re.compile(r"[\s\-./()\u00a0]")

_R = phonenumbers.ValidationResult
_LENGTH_PROBLEMS = {
    _R.TOO_SHORT: gettext_lazy("too short"),
    _R.IS_POSSIBLE_LOCAL_ONLY: gettext_lazy("too short (a local number without area code)"),
    _R.TOO_LONG: gettext_lazy("too long"),
    _R.INVALID_LENGTH: gettext_lazy("of the wrong length"),
    _R.INVALID_COUNTRY_CODE: gettext_lazy("not using a known country code"),
}


class InvalidPhoneNumber(ValueError):
    """A number that cannot be read as a real phone number; ``str()`` says why."""


def normalize_phone(raw: str, region: str | None = None) -> str:
    """Return ``raw`` in E.164 (``+491701234567``) or raise ``InvalidPhoneNumber``.

    Spaces, hyphens, dots and parentheses are ignored; a leading ``00`` is read
    as the international prefix; a number without country code is read in
    ``region`` (default ``TAGWERK_DEFAULT_REGION``), which handles the trunk ``0``.
    """
    text = _SEPARATORS.sub("", str(raw or "")).strip()
    if not text:
        raise InvalidPhoneNumber(_("The phone number is empty."))
    if text.startswith("00"):
        text = "+" + text[2:]
    if region is None:
        region = settings.TAGWERK_DEFAULT_REGION
    if not text.startswith("+") and not region:
        raise InvalidPhoneNumber(
            _("“%(raw)s” has no country code and no default region is set; "
              "write it as +<country code>…")
            % {"raw": raw}
        )
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(
            _("“%(raw)s” is not a phone number (%(why)s).") % {"raw": raw, "why": exc._msg}
        ) from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason in _LENGTH_PROBLEMS:
        raise InvalidPhoneNumber(
            _("“%(raw)s” is %(problem)s for a number of country code +%(code)s.")
            % {"raw": raw, "problem": _LENGTH_PROBLEMS[reason], "code": number.country_code}
        )
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(
            _("“%(raw)s” is not a valid number in its country.") % {"raw": raw}
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_normalize_phone(raw: str, region: str | None = None) -> str | None:
    """Like ``normalize_phone`` but return ``None`` for anything that is not a number."""
    try:
        return normalize_phone(raw, region)
    except InvalidPhoneNumber:
        return None


def country_of(e164: str) -> str:
    """ISO country code (``DE``) of an E.164 number, ``""`` when it has none."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or ""
    except phonenumbers.NumberParseException:
        return ""
