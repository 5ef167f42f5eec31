"""An in-memory sender for tests: every accepted message lands in ``outbox``.

``errors`` maps a recipient (E.164) to an error code that the next send to it
raises once — the way tests make one recipient fail.
"""

from __future__ import annotations

import itertools
import threading

from campaigns.backends.base import (
    PayloadBackend,
    SendResult,
    WhatsAppError,
)

outbox: list[dict] = []
errors: dict[str, list[int]] = {}
_counter = itertools.count(1)
_lock = threading.Lock()


def reset() -> None:
    outbox.clear()
    errors.clear()


class LocmemBackend(PayloadBackend):
    concurrent = True  # the outbox is guarded by a lock; tests run the concurrent path

    def post(self, body: dict) -> SendResult:
        to = "+" + body["to"]
        with _lock:
            queued = errors.get(to)
            if queued:
                code = queued.pop(0)
                raise WhatsAppError(code, http_status=404 if code == 132001 else 400)
            wamid = f"wamid.locmem.{next(_counter)}"
            outbox.append({**body, "id": wamid})
        return SendResult(wamid=wamid)

