"""Chatwoot's application API, the few calls label sync needs (httpx).

Documented at https://developers.chatwoot.com/api-reference: every call carries the
``api_access_token`` header; contact labels are read with ``GET`` and replaced as a
whole with ``POST /api/v1/accounts/{account_id}/contacts/{id}/labels``.
"""

from __future__ import annotations

import httpx

from campaigns.chatwoot.models import ChatwootConnection

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Tests put a fake Chatwoot here (an httpx transport); None is the network.
transport: httpx.BaseTransport | None = None


class ChatwootError(Exception):
    """Chatwoot refused the request (4xx): retrying will not help."""


class ChatwootTransientError(ChatwootError):
    """Chatwoot was unreachable, slow or failing (timeout, 429, 5xx): try again later."""


class ChatwootClient:
    def __init__(self, connection: ChatwootConnection):
        self.account = connection.account_id
        self.http = httpx.Client(
            base_url=connection.base_url.rstrip("/"), timeout=TIMEOUT, transport=transport,
            headers={"api_access_token": connection.api_access_token})

    def __enter__(self) -> ChatwootClient:
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.http.request(method, f"/api/v1/accounts/{self.account}{path}",
                                         **kwargs)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise ChatwootTransientError(f"{method} {path}: {exc!r}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ChatwootTransientError(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ChatwootError(f"{method} {path}: HTTP {response.status_code} "
                                f"{response.text[:200]}")
        try:
            data = response.json()
        except ValueError as exc:
            raise ChatwootTransientError(f"{method} {path}: not JSON") from exc
        return data if isinstance(data, dict) else {}

    def contact_search(self, phone: str) -> int | None:
        """The id of the Chatwoot contact with exactly this number (E.164), if any."""
        found = self._call("GET", "/contacts/search", params={"q": phone}).get("payload") or []
        for contact in found:
            if isinstance(contact, dict) and contact.get("phone_number") == phone:
                return int(contact["id"])
        return None

    def contact_labels(self, contact_id: int) -> list[str]:
        labels = self._call("GET", f"/contacts/{contact_id}/labels").get("payload") or []
        return [str(label) for label in labels]

    def contact_labels_set(self, contact_id: int, labels: list[str]) -> list[str]:
        """Replace the contact's labels with ``labels`` (Chatwoot's call overwrites them)."""
        data = self._call("POST", f"/contacts/{contact_id}/labels", json={"labels": labels})
        return [str(label) for label in data.get("payload") or []]
