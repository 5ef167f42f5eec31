"""Reading a stored webhook body: what WhatsApp sent, checked field by field.

A valid signature says who sent a body, not that it is sane. Everything here is
untrusted: the body may not be UTF-8 or JSON, may be nested a hundred thousand
levels deep, and any field may be missing, of the wrong type, huge or negative.
``parse_body`` never raises: it returns the items that can be applied (typed,
bounded, safe to store) and, for everything else, a sentence for the person who
reads the dead-letter list (``WebhookDelivery.error``). Items that are fine are
applied even when their neighbours are not.

The shapes are the reference's §4.4–4.6 (statuses, messages, user_preferences,
account-level errors).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns.backends import WhatsAppError

STATUSES = ("sent", "delivered", "read", "failed")
MAX_ID = 128  # WhatsApp's message ids are at most 128 characters (reference §1.1)
EARLIEST = datetime(2009, 1, 1, tzinfo=UTC)  # before WhatsApp existed
FUTURE = timedelta(days=1)  # clocks differ; a day ahead is not a clock
MAX_PROBLEMS = 20  # sentences kept per body; the rest are counted
_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: not text


@dataclass(frozen=True)
class StatusIn:
    wamid: str
    status: str  # one of STATUSES
    occurred_at: datetime
    send_id: int | None  # from our callback data "tw:<send id>"
    error: WhatsAppError | None
    payload: dict


@dataclass(frozen=True)
class MessageIn:
    message_id: str
    wa_id: str
    occurred_at: datetime
    kind: str
    text: str
    context_id: str
    payload: dict


@dataclass(frozen=True)
class PreferenceIn:
    wa_id: str
    value: str
    detail: str


@dataclass(frozen=True)
class AccountErrorIn:
    code: int | None
    title: str


@dataclass
class Parsed:
    """What one body holds: the items to apply, and why the others were set aside."""

    statuses: list[StatusIn] = field(default_factory=list)
    messages: list[MessageIn] = field(default_factory=list)
    preferences: list[PreferenceIn] = field(default_factory=list)
    account_errors: list[AccountErrorIn] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seen: int = 0  # items found, fine or not
    ignored: int = 0  # fine, but nothing to record (e.g. a "played" status)

    @property
    def applicable(self) -> int:
        return (len(self.statuses) + len(self.messages) + len(self.preferences)
                + len(self.account_errors))

    def extend(self, other: Parsed) -> None:
        for name in ("statuses", "messages", "preferences", "account_errors"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> str:
        """The dead-letter sentence(s); "" when everything could be applied."""
        if not self.problems:
            return ""
        shown = self.problems[:MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        if more:
            shown.append(ngettext("One more problem of the same kind was left out.",
                                  "%(n)d more problems were left out.", more) % {"n": more})
        done = self.applicable + self.ignored
        if self.seen and done:
            shown.insert(0, _("%(done)d of %(total)d items were applied; the rest were set "
                              "aside.") % {"done": done, "total": self.seen})
        return " ".join(shown)


class _Problem(ValueError):
    """One item cannot be applied; the message says why."""


def parse_body(body: bytes, *, received_at: datetime) -> Parsed:
    """Read one stored body; never raises."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _refused(_(
            "The body is not valid UTF-8 text (byte 0x%(byte)02x at position %(at)d). WhatsApp "
            "sends UTF-8 JSON, so this did not come from WhatsApp unchanged; nothing in it was "
            "applied.") % {"byte": body[exc.start], "at": exc.start})
    try:
        payload = json.loads(text)
    except RecursionError:
        return _refused(_(
            "The body is nested more deeply than any WhatsApp webhook (brackets inside "
            "brackets, thousands of levels deep); it was not read and nothing in it was "
            "applied."))
    except ValueError as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:100]
        where = (_(" at line %(line)d, column %(column)d")
                 % {"line": exc.lineno, "column": exc.colno}
                 if isinstance(exc, json.JSONDecodeError) else "")
        return _refused(_("The body is not JSON (%(detail)s%(where)s); nothing in it was "
                          "applied.") % {"detail": detail, "where": where})
    return parse_payload(payload, received_at=received_at)


def parse_payload(payload: Any, *, received_at: datetime) -> Parsed:
    """Check an already decoded body (``{"entry": [{"changes": [{"value": …}]}]}``)."""
    if not isinstance(payload, dict) or "entry" not in payload:
        return _refused(_("The body is JSON but not an object with an “entry” list, as "
                          "WhatsApp sends; nothing in it was applied."))
    parsed = Parsed()
    entries = payload["entry"]
    if not isinstance(entries, list):
        parsed.problems.append(_("“entry” is not a list; nothing in the body was applied."))
        return parsed
    counter = {"statuses": 0, "messages": 0, "user_preferences": 0, "errors": 0}
    for e, entry in enumerate(entries, 1):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            parsed.problems.append(_("Entry %(e)d has no “changes” list; it was not applied.")
                                   % {"e": e})
            continue
        for c, change in enumerate(changes, 1):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                parsed.problems.append(_("Entry %(e)d, change %(c)d has no “value” object; it "
                                         "was not applied.") % {"e": e, "c": c})
                continue
            _read_value(value, parsed, counter, received_at)
    return parsed


def _refused(sentence: str) -> Parsed:
    return Parsed(problems=[sentence])


# --- One change's value -----------------------------------------------------------------

def _read_value(value: dict, parsed: Parsed, counter: dict, received_at: datetime) -> None:
    readers = {"statuses": (_status, parsed.statuses), "messages": (_message, parsed.messages),
               "user_preferences": (_preference, parsed.preferences),
               "errors": (_account_error, parsed.account_errors)}
    for key, (reader, into) in readers.items():
        items = value.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            parsed.seen += 1
            parsed.problems.append(_("“%(key)s” is not a list; it was not applied.")
                                   % {"key": key})
            continue
        for item in items:
            parsed.seen += 1
            counter[key] += 1
            try:
                result = reader(item, received_at)
            except _Problem as problem:
                parsed.problems.append(_("%(where)s: %(what)s; it was not applied.") % {
                    "where": _where(key, counter[key], item), "what": problem})
                continue
            if result is None:
                parsed.ignored += 1
            else:
                into.append(result)


def _where(key: str, n: int, item: Any) -> str:
    label = {"statuses": _("Status %(n)d"), "messages": _("Message %(n)d"),
             "user_preferences": _("Preference %(n)d"),
             "errors": _("Account error %(n)d")}[key] % {"n": n}
    ident = item.get("id") if isinstance(item, dict) else None
    if isinstance(ident, str) and ident:
        label += " (" + _("message %(id)s") % {"id": _quote(ident)} + ")"
    return label


def _status(item: Any, received_at: datetime) -> StatusIn | None:
    item = _object(item)
    status = _string(item, "status", required=True)
    if status not in STATUSES:
        return None  # "played", "deleted" …: nothing Tagwerk records
    wamid = _identifier(item, "id", _("message id"))
    data = _string(item, "biz_opaque_callback_data")
    send_id = int(data[3:]) if data.startswith("tw:") and data[3:].isdigit() \
        and len(data) <= 21 else None
    return StatusIn(wamid=wamid, status=status, occurred_at=_time(item, received_at),
                    send_id=send_id, error=_error(item), payload=_plain(item))


def _error(item: dict) -> WhatsAppError | None:
    errors = item.get("errors")
    if errors is None or errors == []:
        return None
    if not isinstance(errors, list) or not isinstance(errors[0], dict):
        raise _Problem(_("“errors” should be a list of objects"))
    first = errors[0]
    if first.get("code") is None:
        return None
    code = _number(first.get("code"), _("the error code"))
    data = first.get("error_data")
    details = _clean(data.get("details")) if isinstance(data, dict) else ""
    title = _clean(first.get("title")) or _clean(first.get("message"))
    return WhatsAppError(code, title[:200], details=details[:500])


def _message(item: Any, received_at: datetime) -> MessageIn:
    item = _object(item)
    kind = _string(item, "type")[:20]
    context = item.get("context")
    context_id = _clean(context.get("id"))[:MAX_ID] if isinstance(context, dict) else ""
    return MessageIn(message_id=_identifier(item, "id", _("message id")),
                     wa_id=_identifier(item, "from", _("sender")),
                     occurred_at=_time(item, received_at), kind=kind,
                     text=_text_of(kind, item)[:4096], context_id=context_id,
                     payload=_plain(item))


def _text_of(kind: str, item: dict) -> str:
    if kind == "text":
        return _nested_string(item, "text", "body")
    if kind == "button":
        return _nested_string(item, "button", "text")
    if kind == "interactive":
        inner = item.get("interactive")
        if not isinstance(inner, dict):
            return ""
        for name in ("button_reply", "list_reply"):
            if isinstance(inner.get(name), dict):
                return _nested_string(inner, name, "title")
    return ""


def _preference(item: Any, received_at: datetime) -> PreferenceIn | None:
    item = _object(item)
    if _string(item, "category") not in ("", "marketing_messages"):
        return None
    return PreferenceIn(wa_id=_identifier(item, "wa_id", _("WhatsApp number")),
                        value=_string(item, "value"), detail=_string(item, "detail")[:300])


def _account_error(item: Any, received_at: datetime) -> AccountErrorIn:
    item = _object(item)
    code = item.get("code")
    return AccountErrorIn(
        code=None if code is None else _number(code, _("the error code")),
        title=(_string(item, "title") or _string(item, "message"))[:500])


# --- Fields -------------------------------------------------------------------------------

def _object(item: Any) -> dict:
    if not isinstance(item, dict):
        raise _Problem(_("it is %(kind)s, not an object") % {"kind": _kind(item)})
    return item


def _string(item: dict, key: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None:
        if required:
            raise _Problem(_("“%(key)s” is missing") % {"key": key})
        return ""
    if not isinstance(value, str):
        raise _Problem(_("“%(key)s” is %(kind)s, not text") % {"key": key, "kind": _kind(value)})
    return _clean(value)


def _nested_string(item: dict, outer: str, key: str) -> str:
    inner = item.get(outer)
    return _string(inner, key) if isinstance(inner, dict) else ""


def _identifier(item: dict, key: str, label: str) -> str:
    value = item.get(key)
    if value is None or value == "":
        raise _Problem(_("the %(label)s (“%(key)s”) is missing") % {"label": label, "key": key})
    if not isinstance(value, str):
        raise _Problem(_("the %(label)s (“%(key)s”) is %(kind)s, not text")
                       % {"label": label, "key": key, "kind": _kind(value)})
    if len(value) > MAX_ID:
        raise _Problem(_("the %(label)s is %(n)d characters long; WhatsApp's are at most "
                         "%(max)d") % {"label": label, "n": len(value), "max": MAX_ID})
    cleaned = _clean(value)
    if cleaned != value or not value.isprintable():
        raise _Problem(_("the %(label)s %(value)s contains control characters")
                       % {"label": label, "value": _quote(value)})
    return value


def _number(value: Any, label: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**31:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 9:
        return int(value)
    raise _Problem(_("%(label)s %(value)s is not a number WhatsApp uses")
                   % {"label": label, "value": _quote(value)})


def _time(item: dict, received_at: datetime) -> datetime:
    """A status or message time: seconds since 1970 as digits; the time received if absent."""
    raw = item.get("timestamp")
    if raw is None:
        return received_at
    seconds = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        seconds = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 12:
        seconds = int(raw)
    latest = max(received_at, datetime.now(tz=UTC)) + FUTURE
    if seconds is not None and EARLIEST.timestamp() <= seconds <= latest.timestamp():
        return datetime.fromtimestamp(seconds, tz=UTC)
    raise _Problem(_(
        "the timestamp %(value)s is not a time WhatsApp could have sent (seconds since 1970, "
        "from 2009 until tomorrow)") % {"value": _quote(raw)})


# --- Safe copies ------------------------------------------------------------------------

def _clean(value: Any) -> str:
    """Text that PostgreSQL can store: no NUL characters, no lone surrogates."""
    if not isinstance(value, str):
        return ""
    if not value.isascii():
        value = _SURROGATE.sub("\ufffd", value)
    return value.replace("\x00", "")


def _plain(value: Any, depth: int = 0) -> Any:
    """A bounded copy of a JSON value for the ``payload`` columns (kept for people to read)."""
    if isinstance(value, str):
        return _clean(value)[:1000]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= 6:
        return "…"
    if isinstance(value, dict):
        return {_clean(str(k))[:100]: _plain(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value[:50]]
    return None


def _quote(value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value)[:80] \
        if isinstance(value, int | float | bool) or value is None else _kind(value)
    shown = _clean(shown)
    return "“" + (shown if len(shown) <= 60 else shown[:57] + "…") + "”"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return _("an object")
    if isinstance(value, list):
        return _("a list")
    if isinstance(value, bool):
        return _("true or false")
    if isinstance(value, int | float):
        return _("a number")
    if value is None:
        return _("empty (null)")
    return _("text")
