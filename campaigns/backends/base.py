"""The sender contract and its errors.

Shaped like ``django.core.mail``: ``WHATSAPP_BACKEND`` names a class, options
are read in ``__init__`` (never at import), and every backend returns the same
``SendResult`` or raises the same ``WhatsAppError``. What Tagwerk does about an
error is ``error.action``, looked up in ``campaigns.errors`` (the reference's
§2 table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from campaigns.errors import TITLES, Action, action_for


class WhatsAppError(Exception):
    """The API refused the message; it was not accepted (no wamid exists)."""

    def __init__(self, code: int | None, message: str = "", *, http_status: int | None = None,
                 details: str = "", fbtrace_id: str = ""):
        self.code, self.http_status = code, http_status
        self.message = message or TITLES.get(code or -1, "WhatsApp error")
        self.details, self.fbtrace_id = details, fbtrace_id
        super().__init__(f"({code}) {self.message}" + (f": {details}" if details else ""))

    @property
    def action(self) -> Action:
        return action_for(self.code, self.http_status)


class AmbiguousSendError(Exception):
    """The request may or may not have been accepted (e.g. a read timeout).

    Never retried blindly: the send stays in flight until a status webhook
    carrying its callback data adopts it, or the reconciler's grace period
    passes without one (docs/campaigns.md, "Exactly once").
    """


@dataclass(frozen=True)
class SendResult:
    wamid: str
    message_status: str = "accepted"
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateMessage:
    name: str
    language: str
    components: list[dict[str, Any]] = field(default_factory=list)


def template_payload(to: str, template: TemplateMessage, callback_data: str = "") -> dict:
    """The Cloud API JSON body for a template message (reference §1.3)."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": to.lstrip("+"), "type": "template",
        "template": {"name": template.name, "language": {"code": template.language}},
    }
    if template.components:
        body["template"]["components"] = template.components
    if callback_data:
        body["biz_opaque_callback_data"] = callback_data
    return body


def text_payload(to: str, text: str, callback_data: str = "") -> dict:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp", "recipient_type": "individual",
        "to": to.lstrip("+"), "type": "text", "text": {"preview_url": False, "body": text},
    }
    if callback_data:
        body["biz_opaque_callback_data"] = callback_data
    return body


class BaseBackend:
    """The contract every sender implements.

    ``send_template``/``send_text`` return a ``SendResult`` when the message was
    accepted, raise ``WhatsAppError`` when it was refused (safe to act on its
    ``action``), and ``AmbiguousSendError`` when nobody can tell.
    """

    #: True when the backend can ask WhatsApp whether a template is approved.
    can_check_templates = False
    #: True when ``send_*`` may run in several threads at once and never touch the
    #: database: the send loop then keeps several requests in flight.
    concurrent = False

    def __init__(self, *, phone_number_id: str | None = None, **options: Any):
        self.phone_number_id = phone_number_id or settings.WHATSAPP_PHONE_NUMBER_ID or "sandbox"
        self.options = options

    def send_template(self, *, to: str, template: TemplateMessage,
                      callback_data: str = "") -> SendResult:
        raise NotImplementedError("subclasses of BaseBackend must provide send_template()")

    def send_text(self, *, to: str, text: str, callback_data: str = "") -> SendResult:
        raise NotImplementedError("subclasses of BaseBackend must provide send_text()")

    def close(self) -> None:
        """Release connections; the backend may be used again afterwards."""


class PayloadBackend(BaseBackend):
    """A backend that works on the Cloud API's own JSON body; subclasses implement ``post``."""

    def post(self, body: dict) -> SendResult:
        raise NotImplementedError("subclasses of PayloadBackend must provide post()")

    def send_template(self, *, to: str, template: TemplateMessage,
                      callback_data: str = "") -> SendResult:
        return self.post(template_payload(to, template, callback_data))

    def send_text(self, *, to: str, text: str, callback_data: str = "") -> SendResult:
        return self.post(text_payload(to, text, callback_data))
