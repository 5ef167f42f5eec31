"""The ``make run`` sender: accepts every message and, a little later, answers like WhatsApp.

Each accepted message schedules signed webhooks — sent, delivered, mostly
read, a few failures (131026) and occasional replies — as ``SandboxEvent``
rows. The beat's tick posts the due ones (``sandbox_flush``): over HTTP to
``WHATSAPP_SANDBOX_WEBHOOK_URL`` when set, otherwise straight into the same
intake the webhook view uses (signature checked), so a new user sees a live
report without a WhatsApp account and without long Celery countdowns.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.utils import timezone

from campaigns.backends.base import PayloadBackend, SendResult
from campaigns.intake import sign, signature_valid, webhook_store
from campaigns.models import SandboxEvent

REPLIES = ["Danke!", "Interesse an Produkt A", "Wann habt ihr geöffnet?", "Super, bis bald",
           "STOP"]


def envelope(key: str, value: dict, phone_number_id: str = "sandbox") -> dict:
    """A Cloud API webhook body around one change ``value`` (reference §4.4)."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "4930000000",
                               "phone_number_id": phone_number_id}, key: value},
        "field": "messages"}]}]}


class SandboxBackend(PayloadBackend):
    def __init__(self, *, seed: int | None = None, **options):
        super().__init__(**options)
        self.random = random.Random(seed)

    def post(self, body: dict) -> SendResult:
        wamid = f"wamid.sandbox.{uuid.uuid4().hex}"
        now, r = timezone.now(), self.random
        to, data = body["to"], body.get("biz_opaque_callback_data", "")
        plan: list[tuple[float, str, dict]] = [(0.5, "statuses", {"status": "sent"})]
        if r.random() < 0.03:
            plan.append((1.5, "statuses", {"status": "failed", "errors": [{
                "code": 131026, "title": "Message undeliverable",
                "message": "Message undeliverable",
                "error_data": {"details": "Message Undeliverable."}}]}))
        else:
            plan.append((r.uniform(1, 3), "statuses", {"status": "delivered"}))
            if r.random() < 0.75:
                plan.append((r.uniform(3, 10), "statuses", {"status": "read"}))
                if r.random() < 0.08:
                    text = r.choice(REPLIES[:-1]) if r.random() > 0.1 else "STOP"
                    plan.append((r.uniform(10, 20), "messages", {
                        "from": to, "id": f"wamid.sandbox.in.{uuid.uuid4().hex}",
                        "type": "text", "text": {"body": text}, "context": {"id": wamid}}))
        rows = []
        for delay, key, item in plan:
            at = now + timedelta(seconds=delay)
            if key == "statuses":
                item = {"id": wamid, "recipient_id": to, **item}
                if data:
                    item["biz_opaque_callback_data"] = data
            item["timestamp"] = str(int(at.timestamp()))
            rows.append(SandboxEvent(due_at=at, body=envelope(key, [item],
                                                              self.phone_number_id)))
        SandboxEvent.objects.bulk_create(rows)
        return SendResult(wamid=wamid)


def sandbox_flush(*, now: datetime | None = None, limit: int = 2000) -> int:
    """Post the sandbox webhooks that are due; return how many were posted."""
    now = now or timezone.now()
    due = list(SandboxEvent.objects.filter(posted_at__isnull=True, due_at__lte=now)
               .order_by("due_at")[:limit])
    url = getattr(settings, "WHATSAPP_SANDBOX_WEBHOOK_URL", "")
    for event in due:
        if not SandboxEvent.objects.filter(pk=event.pk, posted_at__isnull=True).update(
                posted_at=now):
            continue
        body = json.dumps(event.body, ensure_ascii=True).encode()
        signature = sign(body)
        if url:
            httpx.post(url, content=body, timeout=10, headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": signature})
        elif signature_valid(body, signature):
            webhook_store(body=body)
    return len(due)
