"""``/webhooks/shop/<slug>/``: a shop's signed webhooks, answered within the request.

Answers: 200 for every verified delivery, also one that is ignored or names no
known customer (a shop disables a webhook that keeps failing); 401 for a
missing or wrong signature; 400 for a body that is not JSON; 404 for an unknown
or inactive connection; 503 when the database is away (the shop retries).
"""

from __future__ import annotations

import json
import logging
import re

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from crm.shops.models import Platform, ShopConnection
from crm.shops.services import SIGNATURE_HEADER, TOPIC_HEADER, delivery_apply, signature_valid

logger = logging.getLogger(__name__)
# WooCommerce pings a new webhook, unsigned, with ``webhook_id=<n>``, and keeps it only on a 200.
WOO_PING = re.compile(rb"^webhook_id=\d{1,20}$")


@csrf_exempt
@require_POST
def shop_webhook(request: HttpRequest, slug: str) -> HttpResponse:
    connection = ShopConnection.objects.filter(slug=slug, active=True).first()
    if connection is None:
        return JsonResponse({"error": "no active shop connection with this address"}, status=404)
    body = request.body
    header = request.headers.get(SIGNATURE_HEADER[connection.platform])
    if (connection.platform == Platform.WOOCOMMERCE and not header
            and WOO_PING.match(body.strip())):
        return JsonResponse({"outcome": "ping"})
    if not signature_valid(connection, body, header):
        logger.warning("shop webhook for %s with a missing or wrong signature", slug)
        return JsonResponse({"error": "missing or invalid signature"}, status=401)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return JsonResponse({"error": "the body is not JSON"}, status=400)
    topic = request.headers.get(TOPIC_HEADER[connection.platform], "")
    try:
        outcome = delivery_apply(connection=connection, topic=topic, data=data)
    except DatabaseError:
        logger.exception("shop webhook for %s not stored", slug)
        return JsonResponse({"error": "temporarily unavailable, try again"}, status=503)
    return JsonResponse({"outcome": outcome.code, "detail": outcome.detail})
