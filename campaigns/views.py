"""``/webhooks/whatsapp/``: the verification handshake and signed deliveries."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.intake import signature_valid, webhook_store

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
    body = request.body
    if not signature_valid(body, request.headers.get("X-Hub-Signature-256")):
        logger.warning("webhook with a missing or invalid signature rejected")
        return HttpResponseForbidden("invalid signature")
    webhook_store(body=body)
    return HttpResponse("ok", content_type="text/plain")
