"""Webhook intake, in the request: check the signature, store the body once, queue a drain.

It does the least possible: the signature is checked over the raw body, the
body is stored once (its SHA-256 is unique, so Meta's retries and replays are
stored once), and a worker applies it later (``campaigns.webhooks``), where a
body that cannot be applied is set aside with its reason. Nothing here reads
the body, so no content can make the request fail. The sandbox sender posts its
webhooks through here too.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from campaigns.metrics import WEBHOOKS_RECEIVED
from campaigns.models import WebhookDelivery
from crm.jobs import enqueue

DRAIN_TASK = "campaigns.tasks.webhooks_drain_task"
DRAIN_FLAG, DRAIN_FLAG_SECONDS = "campaigns:webhooks:drain-queued", 10


def app_secret() -> str:
    """The Meta app secret; in DEBUG without one, a secret derived from SECRET_KEY (sandbox)."""
    if settings.WHATSAPP_APP_SECRET:
        return settings.WHATSAPP_APP_SECRET
    if settings.DEBUG:
        return hashlib.sha256(f"sandbox:{settings.SECRET_KEY}".encode()).hexdigest()
    return ""


def sign(body: bytes, secret: str | None = None) -> str:
    secret = app_secret() if secret is None else secret
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(body: bytes, header: str | None) -> bool:
    secret = app_secret()
    if not secret or not header or not header.startswith("sha256="):
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a hostile header).
    return hmac.compare_digest(sign(body, secret).encode(), header.encode("utf-8", "replace"))


def webhook_store(*, body: bytes) -> WebhookDelivery | None:
    """Store a verified body once; return None when it was stored before (a replay)."""
    digest = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(body=body, sha256=digest)
    except IntegrityError:
        WEBHOOKS_RECEIVED.labels(outcome="duplicate").inc()
        return None
    WEBHOOKS_RECEIVED.labels(outcome="stored").inc()
    _drain_soon()
    return delivery


def _drain_soon() -> None:
    """Queue a drain unless one is queued already; beat's tick is the backstop.

    One drain queued at a time instead of a task per webhook: under a burst of statuses
    most requests only try to set this flag (one Redis round trip), and the worker
    applies them in batches. The drain clears the flag as it starts. With Redis or the
    broker unreachable the body is stored all the same, and the tick (every 2 s) queues
    the drain once they are back.
    """
    if cache.add(DRAIN_FLAG, 1, timeout=DRAIN_FLAG_SECONDS):
        enqueue(DRAIN_TASK)
