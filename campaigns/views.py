"""``/webhooks/whatsapp/``: the verification handshake and signed deliveries.

No body can make it answer 500: it only checks the size and the signature and
stores the raw bytes; reading them is the worker's job (``campaigns.webhook_input``).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.intake import signature_valid, webhook_store
from campaigns.links import link_click, link_destination
from campaigns.metrics import WEBHOOKS_RECEIVED

logger = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        token = settings.WHATSAPP_VERIFY_TOKEN
        if (request.GET.get("hub.mode") == "subscribe" and token
                and constant_time_compare(request.GET.get("hub.verify_token", ""), token)):
            return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
        return HttpResponseForbidden("verify token mismatch")
    body = _body(request, settings.WHATSAPP_WEBHOOK_MAX_BYTES)
    if body is None:
        WEBHOOKS_RECEIVED.labels(outcome="too_large").inc()
        logger.warning("webhook over %d bytes refused", settings.WHATSAPP_WEBHOOK_MAX_BYTES)
        return HttpResponse(_("The body is larger than a WhatsApp webhook can be."),
                            status=413, content_type="text/plain; charset=utf-8")
    if not signature_valid(body, request.headers.get("X-Hub-Signature-256")):
        WEBHOOKS_RECEIVED.labels(outcome="bad_signature").inc()
        logger.warning("webhook with a missing or invalid signature rejected")
        return HttpResponseForbidden("invalid signature")
    webhook_store(body=body)
    return HttpResponse("ok", content_type="text/plain")


def _body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes.

    Read from the stream with our own limit: Meta's bodies may exceed Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB), which applies to forms.
    """
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@require_http_methods(["GET", "HEAD"])
def link_redirect(request: HttpRequest, token: str) -> HttpResponse:
    """``/l/<token>/``: record the click and send the reader on; a friendly 404 otherwise.

    HEAD (link previews, crawlers) is answered without recording a click.
    """
    url = link_destination(token) if request.method == "HEAD" else link_click(token=token)
    if url is None:
        return HttpResponseNotFound(render_to_string("campaigns/link_unknown.html",
                                                     request=request))
    return HttpResponseRedirect(url)
