"""An in-memory sender for tests: every accepted message lands in ``outbox``.

``errors`` maps a recipient (E.164) to an error code that the next send to it
raises once — the way tests make one recipient fail.
"""

from __future__ import annotations

import itertools
import threading

from campaigns.backends.base import (
    BaseBackend,
    SendResult,
    TemplateMessage,
    WhatsAppError,
    template_payload,
    text_payload,
)

outbox: list[dict] = []
errors: dict[str, list[int]] = {}
_counter = itertools.count(1)
_lock = threading.Lock()


def reset() -> None:
    outbox.clear()
    errors.clear()


class LocmemBackend(BaseBackend):
    def _send(self, body: dict) -> SendResult:
        to = "+" + body["to"]
        with _lock:
            queued = errors.get(to)
            if queued:
                code = queued.pop(0)
                raise WhatsAppError(code, http_status=404 if code == 132001 else 400)
            wamid = f"wamid.locmem.{next(_counter)}"
            outbox.append({**body, "id": wamid})
        return SendResult(wamid=wamid)

    def send_template(self, *, to: str, template: TemplateMessage,
                      callback_data: str = "") -> SendResult:
        return self._send(template_payload(to, template, callback_data))

    def send_text(self, *, to: str, text: str, callback_data: str = "") -> SendResult:
        return self._send(text_payload(to, text, callback_data))
