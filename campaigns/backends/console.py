"""A sender that prints each message as JSON (for trying templates by hand)."""

from __future__ import annotations

import json
import sys
import uuid

from campaigns.backends.base import (
    BaseBackend,
    SendResult,
    TemplateMessage,
    template_payload,
    text_payload,
)


class ConsoleBackend(BaseBackend):
    def __init__(self, *, stream=None, **options):
        super().__init__(**options)
        self.stream = stream or sys.stdout

    def _send(self, body: dict) -> SendResult:
        wamid = f"wamid.console.{uuid.uuid4().hex}"
        self.stream.write(json.dumps({**body, "id": wamid}, ensure_ascii=False) + "\n")
        self.stream.flush()
        return SendResult(wamid=wamid)

    def send_template(self, *, to: str, template: TemplateMessage,
                      callback_data: str = "") -> SendResult:
        return self._send(template_payload(to, template, callback_data))

    def send_text(self, *, to: str, text: str, callback_data: str = "") -> SendResult:
        return self._send(text_payload(to, text, callback_data))
