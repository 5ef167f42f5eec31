"""A sender that prints each message as JSON (for trying templates by hand)."""

from __future__ import annotations

import json
import sys
import uuid

from campaigns.backends.base import (
    PayloadBackend,
    SendResult,
)


class ConsoleBackend(PayloadBackend):
    def __init__(self, *, stream=None, **options):
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def post(self, body: dict) -> SendResult:
        wamid = f"wamid.console.{uuid.uuid4().hex}"
        self.stream.write(json.dumps({**body, "id": wamid}, ensure_ascii=False) + "\n")
        self.stream.flush()
        return SendResult(wamid=wamid)

