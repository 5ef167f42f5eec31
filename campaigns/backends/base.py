"""The sender contract, its errors, and the error-code → action table.

Shaped like ``django.core.mail``: ``WHATSAPP_BACKEND`` names a class, options
are read in ``__init__`` (never at import), and every backend returns the same
``SendResult`` or raises the same ``WhatsAppError``. The action table is the
reference's §2 table (docs/campaigns.md); campaign code branches on
``error.action`` only, never on titles or HTTP statuses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings


class Action(enum.StrEnum):
    """What the sender does about an error."""

    SLOW_NUMBER = "slow_number"            # 130429: slow the whole number, retry the message
    GLOBAL_BACKOFF = "global_backoff"      # 4, 80007: app/WABA call limit, retry later
    RETRY_RECIPIENT = "retry_recipient"    # 131056: back off that recipient 1/4/16/64 s
    PAUSE_CAMPAIGN = "pause_campaign"      # 131048: quality throttle, pause + alert
    FAIL_RECIPIENT = "fail_recipient"      # 131026, 131047, 130472, 131030
    DEFER_RECIPIENT = "defer_recipient"    # 131049: per-user marketing limit, retry hours later
    OPT_OUT = "opt_out"                    # 131050: fail and opt the contact out of marketing
    ABORT_CAMPAIGN = "abort_campaign"      # 132000, 132001, 132015, 132016
    STOP_ALL = "stop_all"                  # 368, 131031, 131042, 0, 190
    RETRY_LIMITED = "retry_limited"        # 131000, 131016, 5xx, connection refused
    RETRY_LATER = "retry_later"            # 131057 maintenance: retry after ~60 s


ERROR_ACTIONS: dict[int, Action] = {
    130429: Action.SLOW_NUMBER,
    4: Action.GLOBAL_BACKOFF,
    80007: Action.GLOBAL_BACKOFF,
    131056: Action.RETRY_RECIPIENT,
    131048: Action.PAUSE_CAMPAIGN,
    131047: Action.FAIL_RECIPIENT,
    131026: Action.FAIL_RECIPIENT,
    131049: Action.DEFER_RECIPIENT,
    130472: Action.FAIL_RECIPIENT,
    131030: Action.FAIL_RECIPIENT,
    131050: Action.OPT_OUT,
    132000: Action.ABORT_CAMPAIGN,
    132001: Action.ABORT_CAMPAIGN,
    132015: Action.ABORT_CAMPAIGN,
    132016: Action.ABORT_CAMPAIGN,
    368: Action.STOP_ALL,
    131031: Action.STOP_ALL,
    131042: Action.STOP_ALL,
    0: Action.STOP_ALL,
    190: Action.STOP_ALL,
    131000: Action.RETRY_LIMITED,
    131016: Action.RETRY_LIMITED,
    131057: Action.RETRY_LATER,
}

TITLES: dict[int, str] = {
    130429: "Rate limit hit",
    131056: "(Business Account, Consumer Account) pair rate limit hit",
    131048: "Spam rate limit hit",
    131047: "Re-engagement message",
    131026: "Message undeliverable",
    131049: "This message was not delivered to maintain healthy ecosystem engagement",
    131050: "User stopped marketing messages",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    368: "Temporarily blocked for policies violations",
    131000: "Something went wrong",
    131016: "Service unavailable",
}


def action_for(code: int | None, http_status: int | None = None) -> Action:
    """The action for ``code``; unknown codes fall back on the HTTP status."""
    if code in ERROR_ACTIONS:
        return ERROR_ACTIONS[code]
    if http_status is not None and http_status >= 500:
        return Action.RETRY_LIMITED
    if http_status in (401, 403):
        return Action.STOP_ALL
    return Action.FAIL_RECIPIENT


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
