"""``/webhooks/whatsapp/``: the verification handshake and signed deliveries.

No body can make it answer 500: it only checks the size and the signature and
stores the raw bytes; reading them is the worker's job (``campaigns.webhook_input``).
In production a POST does not reach this view: ``config/wsgi.py`` hands it to
``campaigns.intake.wsgi_intake`` first (the same checks, without the middleware).
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
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.intake import SIGNATURE_HEADER, webhook_receive
from campaigns.links import link_click, link_destination

logger = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        token = settings.WHATSAPP_VERIFY_TOKEN
        if (
            request.GET.get("hub.mode") == "subscribe"
            and token
            and constant_time_compare(request.GET.get("hub.verify_token", ""), token)
        ):
            return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")
        return HttpResponseForbidden("verify token mismatch")
    status, text = webhook_receive(
        stream=request,
        content_length=request.META.get("CONTENT_LENGTH"),
        signature=request.headers.get(SIGNATURE_HEADER),
    )
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")


@require_http_methods(["GET", "HEAD"])
def link_redirect(request: HttpRequest, token: str) -> HttpResponse:
    """``/l/<token>/``: record the click and send the reader on; a friendly 404 otherwise.

    HEAD (link previews, crawlers) is answered without recording a click.
    """
    url = link_destination(token) if request.method == "HEAD" else link_click(token=token)
    if url is None:
        return HttpResponseNotFound(
            render_to_string("campaigns/link_unknown.html", request=request)
        )
    return HttpResponseRedirect(url)
