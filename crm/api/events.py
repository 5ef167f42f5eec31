"""``POST /api/v1/events/`` (and the original ``POST /api/events/``): events from shops.

One event (a JSON object) or a batch (a list, or ``{"events": [...]}``) of at most
``MAX_EVENTS``. A batch is all or nothing: when any event is invalid, none is stored
and the answer lists every invalid one by index and field, so the sender fixes
those and sends the same batch again (replays are harmless: an event whose
``source_id`` is stored already counts as a duplicate).

Both addresses run the same code. ``/api/events/`` keeps the answer format it has
always had (``{"error": code, "message", "errors": [{index, field, reason,
message}]}``) for the integrations built on it; ``/api/v1/events/`` answers in the
API's one error format (``crm.api.framework``).

Plain request parsing rather than a request schema: ingestion takes thousands of
events a second, and ``crm.event_data`` explains a bad value per event and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from ninja import Router, Schema, Status

from crm.api.framework import ApiError, TokenAuth, json_body, responses, token_for
from crm.event_data import EventDataError, event_from_data
from crm.events import EventsResult, events_record
from crm.models import ApiScope

MAX_EVENTS = 1000


@dataclass
class EventsRefused(Exception):
    """The batch was refused as a whole; ``items`` are the invalid events, if any."""

    status: int
    code: str
    message: str
    items: list[dict] = field(default_factory=list)


def _items(data) -> list:
    if isinstance(data, dict) and "events" in data:
        if not isinstance(data["events"], list):
            raise EventsRefused(400, "invalid_body",
                                _("“events” must be a list of event objects."))
        return data["events"]
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        return [data]
    raise EventsRefused(400, "invalid_body",
                        _("Send one event as a JSON object or a batch as a list of objects."))


def events_ingest(body: bytes) -> EventsResult:
    """Validate every event of ``body`` and store them all, or raise ``EventsRefused``."""
    try:
        data = json_body(body)
    except ApiError as exc:
        raise EventsRefused(exc.status, exc.code, exc.message) from None
    items = _items(data)
    if not items:
        raise EventsRefused(400, "empty_batch", _("The batch holds no events."))
    if len(items) > MAX_EVENTS:
        raise EventsRefused(
            413, "too_many_events",
            _("A batch holds at most %(max)d events; this one has %(n)d. Split it.")
            % {"max": MAX_EVENTS, "n": len(items)},
            [{"index": MAX_EVENTS, "field": "", "reason": "too_many",
              "message": _("first event over the limit")}])
    events, errors = [], []
    region = settings.TAGWERK_DEFAULT_REGION
    for index, item in enumerate(items):
        try:
            events.append(event_from_data(item, region=region))
        except EventDataError as exc:
            errors.append({"index": index, "field": exc.field, "reason": exc.reason,
                           "message": exc.message})
    if errors:
        first = errors[0]
        raise EventsRefused(
            400, "invalid_events",
            _("%(n)d of %(total)d events are invalid; nothing was stored. First: event "
              "%(index)d, %(field)s: %(message)s")
            % {"n": len(errors), "total": len(items), **first}, errors)
    try:
        return events_record(events=events, source="api", region=region)
    except IntegrityError:
        # Another request stored one of these source_ids a moment ago: this batch was
        # rolled back whole, and the replay finds those events stored (duplicates).
        return events_record(events=events, source="api", region=region)


def _success(result: EventsResult) -> tuple[int, dict]:
    body = {**result.counts, "ids": [event.pk for event in result.stored]}
    if result.failed:  # validated before, so only a race could land here; say so anyway
        body["errors"] = [{"index": i, "field": "", "message": m}
                          for i, m in sorted(result.failed.items())]
    return (201 if result.stored else 200), body


# --- /api/v1/events/ --------------------------------------------------------------------------

router = Router(tags=["events"])


class EventsStored(Schema):
    stored: int
    duplicates: int
    failed: int
    contacts_created: int
    ids: list[int]


_EVENT_SCHEMA = {
    "type": "object",
    "required": ["type", "phone"],
    "properties": {
        "type": {"type": "string", "maxLength": 100, "description":
                 "purchase, cart_abandoned, interaction, message_read, message_replied, or a "
                 "custom event's name"},
        "name": {"type": "string", "maxLength": 100},
        "phone": {"type": "string", "maxLength": 40, "description": "Any writing of the number"},
        "occurred_at": {"type": "string", "description": "ISO 8601; default: now"},
        "amount": {"type": ["number", "string"]},
        "currency": {"type": "string", "maxLength": 3},
        "product": {"type": "string", "maxLength": 200},
        "category": {"type": "string", "maxLength": 200},
        "source_id": {"type": "string", "maxLength": 200,
                      "description": "Your id for the event; the same id twice is stored once"},
        "payload": {"type": "object", "description": "Nested at most 20 levels deep"},
    },
}


@router.post(
    "/events/", auth=TokenAuth(ApiScope.EVENTS_WRITE),
    response=responses({200: EventsStored, 201: EventsStored}, 400, 413),
    summary="Record events",
    description="Scope `events:write`. One event, a list, or `{\"events\": [...]}` (at most "
                f"{MAX_EVENTS}). All or nothing: an invalid event refuses the batch, and "
                "`error.details` names every invalid event and field (`events[3].phone`). "
                "201 when events were stored, 200 when all were duplicates.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [
            _EVENT_SCHEMA, {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_EVENTS},
            {"type": "object", "required": ["events"], "properties": {
                "events": {"type": "array", "items": _EVENT_SCHEMA, "maxItems": MAX_EVENTS}}},
        ]}}}}},
)
def events_post_v1(request: HttpRequest):
    try:
        result = events_ingest(request.body)
    except EventsRefused as refused:
        raise ApiError(
            refused.status, refused.code, refused.message,
            _path(refused.items[0]) if refused.items else None,
            details=[{"code": i["reason"], "message": i["message"], "field": _path(i)}
                     for i in refused.items] or None) from None
    return Status(*_success(result))


def _path(item: dict) -> str:
    return f"events[{item['index']}]" + (f".{item['field']}" if item["field"] else "")


# --- /api/events/ (the original address and format) -----------------------------------------


def _legacy_error(status: int, code: str, message: str, errors: list | None = None,
                  headers: dict | None = None) -> JsonResponse:
    body = {"error": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    # ASCII escapes: a message may quote a hostile value (a lone surrogate cannot be UTF-8).
    response = JsonResponse(body, status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


@csrf_exempt
def events_post(request: HttpRequest) -> JsonResponse:
    """``POST /api/events/``: as ``/api/v1/events/``, in the format of before v1."""
    if request.method != "POST":
        return _legacy_error(405, "method_not_allowed", _("Use POST."), headers={"Allow": "POST"})
    try:
        token_for(request, ApiScope.EVENTS_WRITE)
        # DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) bounds the body: 1,000 events
        # with generous payloads fit; a larger body is refused unread.
        body = request.body
    except ApiError as exc:
        return _legacy_error(exc.status, exc.code, exc.message, headers=exc.headers)
    except RequestDataTooBig:
        return _legacy_error(413, "body_too_large",
                             _("The body is larger than %(n)d bytes; send smaller batches.")
                             % {"n": settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0})
    try:
        status, answer = _success(events_ingest(body))
    except EventsRefused as refused:
        return _legacy_error(refused.status, refused.code, refused.message,
                             errors=refused.items or None)
    return JsonResponse(answer, status=status)
