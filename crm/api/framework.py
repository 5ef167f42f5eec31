"""What every router of ``/api/v1/`` shares: tokens, errors, pages, phone numbers.

* **Authentication**: ``TokenAuth(scope)`` on each operation reads ``Authorization:
  Bearer <token>``, refuses an unknown or revoked token (401), a token without the
  operation's scope (403), and a token over its rate limit (429 with
  ``Retry-After``). ``request.auth`` is then the ``ApiToken``.
* **Errors** have one shape, whatever raised them (``ApiError``, validation,
  unknown paths, too large bodies, bugs)::

      {"error": {"code": "invalid", "message": "…", "field": "first_name"}}

  ``field`` names the path of the value at fault (``add[1]``, ``events[3].phone``) or
  is null; errors about several values add ``details``: a list of the same objects.
* **Bodies** are strict JSON: ``NaN`` and ``Infinity`` are refused, and so is nesting
  beyond what Python's parser can read, with a 400 instead of a crash.
* **Pages**: list endpoints answer ``{"items": [...], "next_cursor": "…" | null}``;
  pass ``cursor`` back for the next page. Cursors are opaque and stable under inserts.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from bisect import bisect_right
from collections.abc import Sequence
from functools import wraps
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from pydantic import AfterValidator

from crm.event_data import text_problem
from crm.models import ApiToken, Contact
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.tokens import api_token_authenticate, api_token_throttle

logger = logging.getLogger(__name__)


# --- errors ---------------------------------------------------------------------------------


class ApiError(Exception):
    """An answer other than success: raise it anywhere below an operation."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, *,
                 details: list[dict] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.details, self.headers = details, headers or {}

    def body(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "field": self.field}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorBody(ErrorDetail):
    details: list[ErrorDetail] | None = None


class ErrorOut(Schema):
    """The one error shape of the API."""

    error: ErrorBody


def not_found(message: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", message, field)


def _field(loc: Sequence) -> str | None:
    """``("body", "data", "add", 1)`` → ``add[1]``; ``("query", "limit")`` → ``limit``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        where = parts.pop(0)
        if where == "body" and len(parts) > 1:
            parts.pop(0)  # the operation's parameter name, not part of the document
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _validation_error(exc: ValidationError) -> ApiError:
    details = []
    for error in exc.errors:
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        details.append({"code": "invalid", "message": message, "field": _field(error["loc"])})
    first = details[0] if details else {"message": _("The request is not valid."), "field": None}
    summary = "; ".join(f"{d['field']}: {d['message']}" if d["field"] else d["message"]
                        for d in details[:5])
    return ApiError(422, "invalid", summary or first["message"], first["field"], details=details)


def install(api: NinjaAPI) -> None:
    """Answer every failure of ``api`` in the one error format."""

    def answer(request: HttpRequest, error: ApiError) -> HttpResponse:
        response = api.create_response(request, error.body(), status=error.status)
        for key, value in error.headers.items():
            response[key] = value
        return response

    def on_api_error(request, exc: ApiError):
        return answer(request, exc)

    def on_validation(request, exc: ValidationError):
        return answer(request, _validation_error(exc))

    def on_http_error(request, exc: HttpError):
        # ninja wraps what the body parser raised: answer with the parser's own words.
        if isinstance(exc.__cause__, ApiError):
            return answer(request, exc.__cause__)
        if isinstance(exc.__cause__, RequestDataTooBig):
            return on_too_big(request, exc.__cause__)
        return answer(request, ApiError(exc.status_code, "bad_request", str(exc)))

    def on_not_found(request, exc: Http404):
        return answer(request, not_found(_("There is nothing at this address; see "
                                           "/api/v1/docs for the endpoints.")))

    def on_unauthenticated(request, exc: AuthenticationError):
        return answer(request, _unauthenticated())

    def on_too_big(request, exc: RequestDataTooBig):
        return answer(request, ApiError(
            413, "body_too_large", _("The body is larger than %(n)d bytes; send less at once.")
            % {"n": settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0}))

    def on_bug(request, exc: Exception):
        logger.exception("API error on %s %s", request.method, request.path)
        return answer(request, ApiError(500, "server_error", _(
            "Something went wrong on our side. Try again later, and tell the administrators "
            "if it keeps happening.")))

    api.add_exception_handler(ApiError, on_api_error)
    api.add_exception_handler(ValidationError, on_validation)
    api.add_exception_handler(HttpError, on_http_error)
    api.add_exception_handler(Http404, on_not_found)
    api.add_exception_handler(AuthenticationError, on_unauthenticated)
    api.add_exception_handler(RequestDataTooBig, on_too_big)
    api.add_exception_handler(Exception, on_bug)


def unknown_address(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any address under the API that no operation serves, in the error format."""
    return JsonResponse(not_found(_("There is nothing at this address; see /api/v1/docs for "
                                    "the endpoints.")).body(), status=404)


def method_checked(view):
    """``view`` (an operation's URL view) answering a method it does not serve in the error
    format, with ``Allow``, instead of ninja's empty 405 page."""
    @wraps(view)
    def checked(request: HttpRequest, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
                "application/json"):
            allowed = response.get("Allow", "")
            error = ApiError(405, "method_not_allowed", _(
                "%(method)s is not served here; use %(allowed)s.")
                % {"method": request.method, "allowed": allowed or "—"})
            response = JsonResponse(error.body(), status=405)
            response["Allow"] = allowed
        return response
    return checked


def responses(ok: dict[int, Any], *codes: int) -> dict[int, Any]:
    """An operation's documented answers: ``ok`` plus the errors every operation can give
    (400 unreadable request, 401, 403, 429) and ``codes``, all in the error format."""
    return {**ok, **{code: ErrorOut for code in sorted({400, 401, 403, 429, *codes})}}


# --- request bodies -------------------------------------------------------------------------


def _refuse_constant(name: str):
    raise ValueError(_("%(name)s is not a JSON number") % {"name": name})


def json_body(raw: bytes) -> Any:
    """Decode a request body as strict JSON; ``ApiError`` (400) saying what is wrong."""
    try:
        return json.loads(raw or b"null", parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, "invalid_json", _("The body is nested too deeply to read.")) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json",
                       _("The body is not valid JSON: %(e)s") % {"e": exc}) from None


class JsonParser(Parser):
    """ninja's parser with ``json_body``'s strictness and messages."""

    def parse_body(self, request: HttpRequest):
        return json_body(request.body)


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


# A text field of a request: refuses what the database cannot store (NUL, lone surrogates).
Text = Annotated[str, AfterValidator(_storable)]


# --- authentication, scopes and rate limits ---------------------------------------------------


def _unauthenticated() -> ApiError:
    return ApiError(401, "unauthenticated", _(
        "Send an API token: “Authorization: Bearer <token>”. Tokens are made in the admin "
        "under Customers › API tokens, or with “manage.py create_api_token”."),
        headers={"WWW-Authenticate": 'Bearer realm="tagwerk"'})


def token_for(request: HttpRequest, scope: str | None) -> ApiToken:
    """The request's token, checked for ``scope`` and its rate limit; ``ApiError`` if not."""
    kind, _sep, raw = request.headers.get("Authorization", "").partition(" ")
    if kind.lower() != "bearer" or not raw.strip():
        raise _unauthenticated()
    token = api_token_authenticate(raw.strip())
    if token is None:
        raise ApiError(401, "invalid_token", _(
            "This token is unknown or was revoked; create a new one in the admin."),
            headers={"WWW-Authenticate": 'Bearer realm="tagwerk", error="invalid_token"'})
    if scope is not None and scope not in token.scopes:
        raise ApiError(403, "insufficient_scope",
                       _("The token “%(name)s” lacks the scope “%(scope)s”.")
                       % {"name": token.name, "scope": scope})
    wait = api_token_throttle(token)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, "rate_limited", _(
            "The token “%(name)s” sent more requests than its limit allows; wait %(n)d s.")
            % {"name": token.name, "n": seconds}, headers={"Retry-After": str(seconds)})
    return token


class TokenAuth(HttpBearer):
    """Bearer token with ``scope`` (None: any valid token)."""

    def __init__(self, scope: str | None = None):
        super().__init__()
        self.scope = scope

    def __call__(self, request: HttpRequest) -> ApiToken:
        return token_for(request, self.scope)

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:  # pragma: no cover
        return token_for(request, self.scope)


# --- pages ----------------------------------------------------------------------------------

_CURSOR_PREFIX = "after:"


def cursor_encode(after: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{after}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str | None) -> int:
    """The id after which the page starts (0 for the first page); ``ApiError`` if garbled."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if text.startswith(_CURSOR_PREFIX):
            value = int(text.removeprefix(_CURSOR_PREFIX))
            if 0 <= value < 2**63:
                return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise ApiError(400, "invalid_cursor", _(
        "This cursor was not given by the API; pass “next_cursor” from the previous page, "
        "or leave it out for the first page."), "cursor")


def page_limit(limit: int | None) -> int:
    if limit is None:
        return settings.TAGWERK_API_PAGE_SIZE
    if not 1 <= limit <= settings.TAGWERK_API_MAX_PAGE_SIZE:
        raise ApiError(422, "invalid", _("“limit” must lie between 1 and %(max)d.")
                       % {"max": settings.TAGWERK_API_MAX_PAGE_SIZE}, "limit")
    return limit


def page_of(queryset: QuerySet, *, cursor: str | None, limit: int | None) -> dict:
    """One page of ``queryset`` in id order: ``{"items": rows, "next_cursor": …}``."""
    size = page_limit(limit)
    rows = list(queryset.filter(pk__gt=cursor_decode(cursor)).order_by("pk")[:size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return {"items": rows, "next_cursor": cursor_encode(rows[-1].pk) if more else None}


def page_of_ids(ids: Sequence[int], *, cursor: str | None, limit: int | None
                ) -> tuple[list[int], str | None]:
    """One page of ascending ``ids`` (from an index): the ids and the next cursor."""
    size = page_limit(limit)
    after = cursor_decode(cursor)
    start = bisect_right(ids, after)
    chosen = list(ids[start:start + size + 1])
    more = len(chosen) > size
    chosen = chosen[:size]
    return chosen, cursor_encode(chosen[-1]) if more else None


# --- the phone path -------------------------------------------------------------------------


def phone_from_path(raw: str) -> str:
    """E.164 for a number as written in a path (``+49 170 …``, ``0049…``, ``0170…``)."""
    try:
        return normalize_phone(raw, settings.TAGWERK_DEFAULT_REGION)
    except InvalidPhoneNumber as exc:
        raise ApiError(422, "invalid_phone", str(exc), "phone") from None


def contact_by_phone(raw: str, queryset: QuerySet[Contact] | None = None) -> Contact:
    """The contact with the number ``raw`` in any writing; ``ApiError`` 404 or 422."""
    phone = phone_from_path(raw)
    queryset = Contact.objects.all() if queryset is None else queryset
    contact = queryset.filter(phone=phone).first()
    if contact is None:
        raise not_found(_("No contact has the number %(phone)s.") % {"phone": phone}, "phone")
    return contact
