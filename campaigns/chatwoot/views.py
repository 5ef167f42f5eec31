"""The sidebar Chatwoot shows beside a conversation, and Chatwoot's webhook.

The sidebar is a page in an iframe (a Chatwoot "Dashboard App"): its script receives the
conversation's contact from Chatwoot, and the server renders the panel for that number.
Sign-in is the agent's Tagwerk session. Every tag change goes through
``services.sidebar_tags_change`` (``tags_change``: rights, single choice, history).
"""

from __future__ import annotations

import json
import logging

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.chatwoot.framing import chatwoot_frame, chatwoot_origin
from campaigns.chatwoot.models import ChatwootConnection
from campaigns.chatwoot.selectors import tags_addable_grouped, tags_held_grouped
from campaigns.chatwoot.services import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sidebar_contact_create,
    sidebar_tags_change,
    signature_valid,
    webhook_apply,
)
from campaigns.chatwoot.webhook_input import WebhookRejected
from crm.models import Contact
from crm.phones import try_normalize_phone
from crm.timeline import timeline_page
from tagging.models import Tag
from tagging.offers.selectors import offers_for_contact
from tagging.permissions import applicable_dimension_ids
from tagging.services import TagChangeError

logger = logging.getLogger(__name__)
TIMELINE_ENTRIES = 8
WEBHOOK_MAX_BYTES = 1024 * 1024


def _may_use(user) -> bool:
    return user.is_authenticated and user.is_active and user.has_perm("crm.view_contact")


@require_GET
@chatwoot_frame
@ensure_csrf_cookie
def sidebar(request: HttpRequest) -> HttpResponse:
    login = f"{reverse('admin:login')}?next={reverse('chatwoot:signed_in')}"
    return render(request, "chatwoot/sidebar.html", {
        "signed_in": _may_use(request.user), "login_url": login,
        "chatwoot_origin": chatwoot_origin(),
    })


def signed_in(request: HttpRequest) -> HttpResponse:
    """Where the sign-in opened from the sidebar (in a new tab) ends."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return render(request, "chatwoot/signed_in.html")


def _tag_ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdecimal() and len(v) < 19]


@require_http_methods(["GET", "POST"])
@chatwoot_frame
def sidebar_panel(request: HttpRequest) -> HttpResponse:
    """GET: the panel of ``?phone=``; POST: change its tags (``add``/``remove``: tag ids)."""
    if not _may_use(request.user):
        return render(request, "chatwoot/panel_signin.html", status=403)
    data = request.POST if request.method == "POST" else request.GET
    phone = try_normalize_phone(data.get("phone", "")[:64])
    contact = Contact.objects.filter(phone=phone).first() if phone else None
    message = error = ""
    status = 200
    if request.method == "POST" and contact is not None:
        ids = _tag_ids(data.getlist("add")) + _tag_ids(data.getlist("remove"))
        tags = {t.pk: t for t in Tag.objects.filter(pk__in=ids).select_related("dimension")}
        add = [tags[i] for i in _tag_ids(data.getlist("add")) if i in tags]
        remove = [tags[i] for i in _tag_ids(data.getlist("remove")) if i in tags]
        try:
            result = sidebar_tags_change(contact=contact, add=add, remove=remove,
                                         agent=request.user)
            message = _("Saved.") if result.changed else _("Nothing to change.")
        except PermissionDenied as exc:
            error, status = str(exc), 403
        except TagChangeError as exc:
            error, status = str(exc), 422
    return _panel(request, data.get("phone", "")[:64], phone, contact, message, error, status)


def _panel(request, raw: str, phone: str | None, contact: Contact | None,
           message: str = "", error: str = "", status: int = 200) -> HttpResponse:
    agent = request.POST.get("agent_email") or request.GET.get("agent_email") or ""
    context = {"raw": raw, "phone": phone, "contact": contact, "message": message,
               "error": error, "chatwoot_agent": agent[:254],
               "other_agent": bool(agent) and agent.strip().casefold() != (
                   request.user.email or "").casefold(),
               "may_create": request.user.has_perm("crm.add_contact")}
    if contact is not None:
        context.update(
            groups=tags_held_grouped(contact, request.user),
            addable=tags_addable_grouped(contact, request.user),
            granted=applicable_dimension_ids(request.user) != set(),
            timeline=timeline_page(contact, limit=TIMELINE_ENTRIES).entries,
            # The same answer as GET /api/v1/contacts/{phone}/offers/: valid now and eligible.
            offers=offers_for_contact(contact))
    return render(request, "chatwoot/panel.html", context, status=status)


@require_POST
@chatwoot_frame
def sidebar_contact_create_view(request: HttpRequest) -> HttpResponse:
    """Create the contact of the conversation's unknown number, then show its panel."""
    if not _may_use(request.user):
        return render(request, "chatwoot/panel_signin.html", status=403)
    raw = request.POST.get("phone", "")[:64]
    phone = try_normalize_phone(raw)
    if phone is None or not request.user.has_perm("crm.add_contact"):
        return _panel(request, raw, phone, None)
    contact = sidebar_contact_create(phone=phone, name=request.POST.get("name", "")[:200])
    return _panel(request, raw, phone, contact, _("Contact created."))


@csrf_exempt
@require_POST
def chatwoot_webhook(request: HttpRequest, token: str) -> HttpResponse:
    """Chatwoot's webhook: 200 for every readable delivery (also an ignored one), 400 for
    a body that is not one, 401 for a missing or wrong signature (when the connection has
    a secret), 404 for an unknown address, 503 when the database is away."""
    connection = ChatwootConnection.objects.filter(active=True, webhook_token=token[:64]).first()
    if connection is None:
        return JsonResponse({"error": "no active Chatwoot connection with this address"},
                            status=404)
    if len(request.body) > WEBHOOK_MAX_BYTES:
        return JsonResponse({"error": "the body is too large"}, status=413)
    if not signature_valid(connection=connection, body=request.body,
                           timestamp=request.headers.get(TIMESTAMP_HEADER),
                           signature=request.headers.get(SIGNATURE_HEADER)):
        logger.warning("chatwoot webhook for %s with a missing or wrong signature",
                       connection.name)
        return JsonResponse({"error": "missing, stale or invalid signature"}, status=401)
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):
        return JsonResponse({"error": "the body is not JSON"}, status=400)
    try:
        outcome = webhook_apply(connection=connection, data=data)
    except WebhookRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    except DatabaseError:
        logger.exception("chatwoot webhook for %s not applied", connection.name)
        return JsonResponse({"error": "temporarily unavailable, try again"}, status=503)
    return JsonResponse({"outcome": outcome.code, "detail": outcome.detail})
