"""Turning outside data (JSON objects, CSV rows) into ``EventIn``.

Shared by ``POST /api/events/`` and ``import_events`` so that both accept the
same fields and explain a bad value the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from crm.events import EventIn
from crm.models import EventKind
from crm.phones import InvalidPhoneNumber, normalize_phone

# Other names shops use for the same kinds.
ALIASES = {"order": EventKind.PURCHASE, "cart_abandon": EventKind.CART_ABANDONED,
           "read": EventKind.MESSAGE_READ, "reply": EventKind.MESSAGE_REPLIED}


class EventDataError(ValueError):
    """One field of one event is wrong; ``reason`` is a short stable code for reports."""

    def __init__(self, field: str, reason: str, message: str):
        self.field, self.reason, self.message = field, reason, message
        super().__init__(f"{field}: {message}")


def _text(data: Mapping, key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise EventDataError(key, "bad_value", _("must be text"))
    value = str(value).strip()
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
    value = parse_datetime(raw.strip().replace(" ", "T", 1))
    if value is None:
        day = parse_date(raw.strip())
        value = datetime.combine(day, datetime.min.time()) if day else None
    if value is None:
        raise EventDataError("occurred_at", "bad_date",
                             _("“%(v)s” is not a date-time such as 2025-03-01T14:30:00+01:00")
                             % {"v": raw})
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    if value > timezone.now() + timedelta(days=1):
        raise EventDataError("occurred_at", "future_date", _("lies in the future"))
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
    return EventIn(
        kind=kind, name=name if kind == EventKind.CUSTOM else "", phone=phone,
        occurred_at=parse_when(data.get("occurred_at")), amount=parse_amount(data.get("amount")),
        currency=currency, product=_text(data, "product", 200),
        category=_text(data, "category", 200), payload=payload,
        source_id=_text(data, "source_id", 200), phone_normalized=True,
    )
