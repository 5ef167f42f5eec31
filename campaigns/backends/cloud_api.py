"""The real WhatsApp Cloud API (Graph API) over httpx.

``POST {WHATSAPP_GRAPH_BASE_URL}/{WHATSAPP_API_VERSION}/{WHATSAPP_PHONE_NUMBER_ID}/messages``
with a bearer token; the bodies are the reference's §1.2/§1.3 JSON. Errors
are read from the Graph envelope's ``error.code`` (§1.5), never from titles.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from campaigns.backends.base import (
    AmbiguousSendError,
    PayloadBackend,
    SendResult,
    WhatsAppError,
)


class CloudAPIBackend(PayloadBackend):
    concurrent = True  # httpx.Client is thread-safe and pools its connections

    def __init__(self, *, base_url: str | None = None, api_version: str | None = None,
                 access_token: str | None = None, timeout: float = 20.0,
                 client: httpx.Client | None = None, **options: Any):
        super().__init__(**options)
        self.base_url = (base_url or settings.WHATSAPP_GRAPH_BASE_URL).rstrip("/")
        self.api_version = api_version or settings.WHATSAPP_API_VERSION
        token = access_token or settings.WHATSAPP_ACCESS_TOKEN
        if not token or self.phone_number_id == "sandbox":
            raise ImproperlyConfigured(
                "The Cloud API sender needs WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID "
                "(WhatsApp Manager → API setup).")
        self.url = f"{self.base_url}/{self.api_version}/{self.phone_number_id}/messages"
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=5.0),
            # One kept-alive connection per request the send loop keeps in flight.
            limits=httpx.Limits(max_connections=100,
                                max_keepalive_connections=settings.WHATSAPP_SEND_THREADS),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    def post(self, body: dict) -> SendResult:
        try:
            response = self.client.post(self.url, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Never reached the server: safe to retry.
            raise WhatsAppError(None, f"cannot connect: {exc}", http_status=503) from exc
        except httpx.TransportError as exc:
            # The request may have been processed: do not resend blindly.
            raise AmbiguousSendError(str(exc)) from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 400 or "error" in data:
            error = data.get("error") or {}
            try:
                code = int(error.get("code"))
            except (TypeError, ValueError):
                code = None
            details = error.get("error_data")
            details = details.get("details", "") if isinstance(details, dict) else str(
                details or "")
            message = re.sub(r"^\(#\d+\)\s*", "", str(error.get("message", "")))
            raise WhatsAppError(code, message or response.reason_phrase,
                                http_status=response.status_code, details=details,
                                fbtrace_id=error.get("fbtrace_id", ""))
        message = (data.get("messages") or [{}])[0]
        if not message.get("id"):
            raise AmbiguousSendError(f"HTTP {response.status_code} without a message id")
        return SendResult(wamid=message["id"],
                          message_status=message.get("message_status", "accepted"), raw=data)


    def close(self) -> None:
        self.client.close()
