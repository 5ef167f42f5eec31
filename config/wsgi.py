"""The WSGI application: Django, with ``POST /webhooks/whatsapp/`` taken off first.

WhatsApp's status webhooks arrive by the thousand per second during a campaign; the
bare intake (``campaigns.intake.wsgi_intake``: size, signature, one INSERT, one Redis
SET NX) answers them without Django's middleware stack, which would cost several
times the work itself (docs/benchmarks.md, "Webhook intake"). Everything else,
including the GET handshake on the same address, goes to Django.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
django_application = get_wsgi_application()

from campaigns.intake import PATH as INTAKE_PATH  # noqa: E402 (after django.setup())
from campaigns.intake import wsgi_intake  # noqa: E402


def application(environ, start_response):
    if environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == INTAKE_PATH:
        return wsgi_intake(environ, start_response)
    return django_application(environ, start_response)
