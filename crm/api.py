"""The HTTP API: ``POST /api/events/``.

Plain Django views rather than Django REST framework: one endpoint with a
fixed JSON shape does not justify a framework, and staying on the bare request
keeps ingestion fast (thousands of events a second).

Errors are JSON ``{"error": code, "message": text, "errors": [{index, field,
message}]}`` with 400 (bad JSON or bad events — nothing is stored), 401 (no or
unknown token), 403 (token lacks the scope), 405, 413 (too many events or too
large a body, beyond ``DATA_UPLOAD_MAX_MEMORY_SIZE``).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from crm.event_data import EventDataError, event_from_data
from crm.events import events_record
from crm.models import ApiScope, ApiToken
from crm.tokens import api_token_authenticate

MAX_EVENTS = 1000


def _error(status: int, code: str, message: str, errors: list | None = None,
           headers: dict | None = None) -> JsonResponse:
    body = {"error": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _authenticate(request: HttpRequest, scope: str) -> ApiToken | JsonResponse:
    header = request.headers.get("Authorization", "")
    kind, _sep, raw = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="tagwerk"'}
    if kind.lower() != "bearer" or not raw.strip():
        return _error(401, "unauthenticated",
                      _("Send an API token: “Authorization: Bearer <token>”. Tokens are made "
                        "in the admin under Customers › API tokens."), headers=challenge)
    token = api_token_authenticate(raw.strip())
    if token is None:
        return _error(401, "invalid_token",
                      _("This token is unknown or was revoked; create a new one in the admin."),
                      headers=challenge)
    if scope not in token.scopes:
        return _error(403, "insufficient_scope",
                      _("The token “%(name)s” lacks the scope “%(scope)s”.")
                      % {"name": token.name, "scope": scope})
    return token


def _refuse_constant(name: str):
    raise ValueError(_("%(name)s is not a JSON number") % {"name": name})


@csrf_exempt
def events_post(request: HttpRequest) -> JsonResponse:
    """Record one event (a JSON object) or a batch (a list, or ``{"events": [...]}``)."""
    if request.method != "POST":
        return _error(405, "method_not_allowed", _("Use POST."), headers={"Allow": "POST"})
    token = _authenticate(request, ApiScope.EVENTS_WRITE)
    if isinstance(token, JsonResponse):
        return token
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default) bounds the body:
    # 1,000 events with generous payloads fit; a larger body is refused unread.
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "body_too_large",
                      _("The body is larger than %(n)d bytes; send smaller batches.")
                      % {"n": settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0})
    try:
        data = json.loads(body or b"null", parse_constant=_refuse_constant)
    except RecursionError:
        return _error(400, "invalid_json", _("The body is nested too deeply to read."))
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, "invalid_json", _("The body is not valid JSON: %(e)s") % {"e": exc})
    if isinstance(data, dict) and "events" in data:
        items = data["events"]
        if not isinstance(items, list):
            return _error(400, "invalid_body", _("“events” must be a list of event objects."))
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = [data]
    else:
        return _error(400, "invalid_body",
                      _("Send one event as a JSON object or a batch as a list of objects."))
    if not items:
        return _error(400, "empty_batch", _("The batch holds no events."))
    if len(items) > MAX_EVENTS:
        return _error(413, "too_many_events",
                      _("A batch holds at most %(max)d events; this one has %(n)d. Split it.")
                      % {"max": MAX_EVENTS, "n": len(items)},
                      errors=[{"index": MAX_EVENTS, "field": "",
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
        return _error(400, "invalid_events",
                      _("%(n)d of %(total)d events are invalid; nothing was stored. First: event "
                        "%(index)d, %(field)s: %(message)s")
                      % {"n": len(errors), "total": len(items), **first},
                      errors=errors)
    result = events_record(events=events, source="api", region=region)
    body = {**result.counts, "ids": [event.pk for event in result.stored]}
    if result.failed:  # validated above, so only a race could land here; say so anyway
        body["errors"] = [{"index": i, "field": "", "message": m}
                          for i, m in sorted(result.failed.items())]
    return JsonResponse(body, status=201 if result.stored else 200)
