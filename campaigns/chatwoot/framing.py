"""Framing for the sidebar only: Chatwoot's origin may show it in an iframe, nobody else.

Everywhere else Django's ``X_FRAME_OPTIONS`` stays as configured. These views drop
``X-Frame-Options`` (it cannot name another origin) and send CSP ``frame-ancestors``
naming ``CHATWOOT_ORIGIN``; without that setting only Tagwerk itself may frame them.
"""

from __future__ import annotations

import re
from functools import wraps

from django.conf import settings

ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


def chatwoot_origin() -> str:
    """``CHATWOOT_ORIGIN`` when it is one well-formed origin, else ``""``."""
    origin = (getattr(settings, "CHATWOOT_ORIGIN", "") or "").rstrip("/")
    return origin if ORIGIN.match(origin) else ""


def chatwoot_frame(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        origin = chatwoot_origin()
        response.xframe_options_exempt = True
        response["Content-Security-Policy"] = f"frame-ancestors 'self' {origin}".strip()
        return response
    return wrapped
