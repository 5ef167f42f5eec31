"""Pluggable WhatsApp senders; ``get_backend()`` loads ``WHATSAPP_BACKEND``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from campaigns.backends.base import (  # noqa: F401
    AmbiguousSendError,
    BaseBackend,
    SendResult,
    TemplateMessage,
    WhatsAppError,
)
from campaigns.errors import Action  # noqa: F401


def get_backend(backend: str | None = None, **options: Any) -> BaseBackend:
    """Load a sender by dotted path (default ``settings.WHATSAPP_BACKEND``)."""
    return import_string(backend or settings.WHATSAPP_BACKEND)(**options)
