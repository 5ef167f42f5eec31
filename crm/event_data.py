"""Turning outside data (JSON objects, CSV rows) into ``EventIn``.

Shared by the events API and ``import_events`` so that both accept the same
fields and explain a bad value the same way. Everything a value could carry
that the database cannot store is refused here, with the field it sits in:
NUL characters (PostgreSQL text and jsonb refuse them), lone UTF-16 surrogates
(not encodable as UTF-8), numbers that are not finite, JSON nested deeper than
``MAX_DEPTH`` and dates that do not exist (2025-02-30) or lie outside
``EARLIEST``..tomorrow. ``text_problem`` and ``json_problem`` serve the other
writers of outside data (the contacts API) the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from crm.events import EventIn
from crm.models import EventKind
from crm.phones import InvalidPhoneNumber, normalize_phone

# Payloads and attributes deeper than this are refused: no shop sends more, and a bound keeps
# every reader (json.dumps, PostgreSQL's jsonb parser, the admin) far from its recursion limit.
MAX_DEPTH = 20
# Events before this are refused: older dates are typing mistakes, and the bound keeps every
# time zone conversion inside the calendar (0001-01-01+14:00 is not a date in UTC).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Other names shops use for the same kinds.
ALIASES = {"order": EventKind.PURCHASE, "cart_abandon": EventKind.CART_ABANDONED,
           "read": EventKind.MESSAGE_READ, "reply": EventKind.MESSAGE_REPLIED}


class EventDataError(ValueError):
    """One field of one event is wrong; ``reason`` is a short stable code for reports."""

    def __init__(self, field: str, reason: str, message: str):
        self.field, self.reason, self.message = field, reason, message
        super().__init__(f"{field}: {message}")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None: NUL characters and lone surrogates."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return _("contains a NUL character (\\u0000) at position %(n)d; remove it") % {
            "n": found.start() + 1}
    return _("contains a lone surrogate (\\u%(code)04x) at position %(n)d: not a character; "
             "send text as UTF-8") % {"code": ord(found.group()), "n": found.start() + 1}


def json_problem(value, path: str) -> tuple[str, str, str] | None:
    """(field path, reason, message) for the first part of a decoded JSON ``value`` that
    cannot be stored, or None. Walks without recursion, so any depth is safe to check."""
    stack = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return where, "too_deep", _("is nested more than %(n)d levels deep") % {
                "n": MAX_DEPTH}
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return where, "bad_text", problem
        elif isinstance(item, float) and not math.isfinite(item):
            return where, "bad_number", _("is not a finite number")
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = text_problem(key)
                if problem:
                    return where, "bad_text", _("a key %(problem)s") % {"problem": problem}
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
    return None


def _text(data: Mapping, key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EventDataError(key, "bad_value", _("must be text"))
    if isinstance(value, float) and not math.isfinite(value):
        raise EventDataError(key, "bad_value", _("must be text"))
    value = str(value).strip()
    problem = text_problem(value)
    if problem:
        raise EventDataError(key, "bad_text", problem)
    if len(value) > limit:
        raise EventDataError(key, "too_long", _("at most %(n)d characters") % {"n": limit})
    return value


def parse_kind(raw: str) -> tuple[str, str]:
    """(kind, name) for a ``type``: a built-in kind, an alias, or a custom event's name."""
    raw = raw.strip()
    key = raw.lower()
    if key in EventKind.values:
        return key, ""
    if key in ALIASES:
        return ALIASES[key], ""
    return EventKind.CUSTOM, raw


def parse_when(raw) -> datetime | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise EventDataError("occurred_at", "bad_date", _("must be an ISO 8601 date-time text"))
    value = _date_time(raw.strip())
    if value is None:
        raise EventDataError("occurred_at", "bad_date",
                             _("“%(v)s” is not a date-time such as 2025-03-01T14:30:00+01:00")
                             % {"v": raw[:40]})
    if value > timezone.now() + timedelta(days=1):
        raise EventDataError("occurred_at", "future_date", _("lies in the future"))
    return value


def _date_time(text: str) -> datetime | None:
    """An aware date-time for ``text``, or None when it names no real moment since 1900.

    Django's parsers return None for text of the wrong shape but raise for the right shape
    with impossible parts (2025-02-30, an offset of +99:00); both mean "not a date" here.
    """
    if _UNSTORABLE.search(text):
        return None
    try:
        value = parse_datetime(text.replace(" ", "T", 1))
        if value is None:
            day = parse_date(text)
            value = datetime.combine(day, datetime.min.time()) if day else None
        if value is not None and timezone.is_naive(value):
            value = timezone.make_aware(value)
        if value is not None and value.astimezone(UTC) < EARLIEST:
            return None
    except (ValueError, OverflowError):
        return None
    return value


def parse_amount(raw) -> Decimal | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise EventDataError("amount", "bad_amount", _("must be a number"))
    try:
        value = Decimal(str(raw).strip().replace(",", "."))
    except InvalidOperation:
        raise EventDataError("amount", "bad_amount",
                             _("“%(v)s” is not a number") % {"v": raw}) from None
    if not value.is_finite() or abs(value) >= Decimal("1e12"):
        raise EventDataError("amount", "bad_amount", _("is out of range"))
    return value.quantize(Decimal("0.01"))


def event_from_data(data: Mapping, *, region: str | None = None) -> EventIn:
    """An ``EventIn`` from one JSON object or CSV row; raise ``EventDataError``."""
    if not isinstance(data, Mapping):
        raise EventDataError("", "bad_item", _("each event must be a JSON object"))
    raw_kind = _text(data, "type", 100) or _text(data, "kind", 100)
    if not raw_kind:
        raise EventDataError("type", "missing_type",
                             _("is required: purchase, cart_abandoned, interaction, "
                               "message_read, message_replied or a custom name"))
    kind, name = parse_kind(raw_kind)
    name = _text(data, "name", 100) or name
    if kind == EventKind.CUSTOM and not name:
        raise EventDataError("name", "missing_name", _("a custom event needs a name"))
    phone = _text(data, "phone", 40)
    if not phone:
        raise EventDataError("phone", "missing_phone", _("is required"))
    try:
        phone = normalize_phone(phone, region)
    except InvalidPhoneNumber as exc:
        raise EventDataError("phone", "invalid_phone", str(exc)) from None
    currency = _text(data, "currency", 3).upper()
    if currency and not currency.isalpha():
        raise EventDataError("currency", "bad_currency", _("must be a three-letter code"))
    payload = data.get("payload") or {}
    if not isinstance(payload, dict):
        raise EventDataError("payload", "bad_payload", _("must be a JSON object"))
    problem = json_problem(payload, "payload")
    if problem:
        raise EventDataError(*problem)
    return EventIn(
        kind=kind, name=name if kind == EventKind.CUSTOM else "", phone=phone,
        occurred_at=parse_when(data.get("occurred_at")), amount=parse_amount(data.get("amount")),
        currency=currency, product=_text(data, "product", 200),
        category=_text(data, "category", 200), payload=payload,
        source_id=_text(data, "source_id", 200), phone_normalized=True,
    )
