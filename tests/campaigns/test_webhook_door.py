"""The bare WSGI door for ``POST /webhooks/whatsapp/`` (config/wsgi.py → campaigns.intake).

Requests go through ``config.wsgi.application`` as gunicorn calls it, not Django's test
client (which would take the Django view instead).
"""

from __future__ import annotations

import io
import json
import threading

import pytest
from django.db import connection

from campaigns.intake import app_secret
from campaigns.models import WebhookDelivery
from config.wsgi import application
from tests.campaigns.fake_cloud_api import sign, status_payload
from tests.conftest import needs_postgresql

HOST = "hooks.example.com"


@pytest.fixture(autouse=True)
def _host(settings):
    settings.ALLOWED_HOSTS = [HOST]


def call(
    body: bytes,
    *,
    signature: str | None = "valid",
    method: str = "POST",
    host: str = HOST,
    query: str = "",
) -> tuple[int, dict, bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": "/webhooks/whatsapp/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": "443",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
    }
    if signature == "valid":
        environ["HTTP_X_HUB_SIGNATURE_256"] = sign(body, app_secret())
    elif signature:
        environ["HTTP_X_HUB_SIGNATURE_256"] = signature
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

    chunks = application(environ, start_response)
    content = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return answer["status"], answer["headers"], content


def body_of(wamid: str, status: str = "delivered") -> bytes:
    return json.dumps(status_payload(wamid, status, "4917012345678")).encode()


def test_a_signed_status_is_stored_once_without_the_middleware(db):
    body = body_of("wamid.door.1")
    status, headers, content = call(body)
    assert (status, content) == (200, b"ok")
    assert "X-Frame-Options" not in headers  # the admin's middleware never ran
    assert "Set-Cookie" not in headers
    assert call(body)[0] == 200  # Meta's retry: acknowledged, not stored again
    stored = WebhookDelivery.objects.get()
    assert bytes(stored.body) == body
    assert stored.processed_at is None  # a worker applies it (campaigns.webhooks)


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "md5=abc"])
def test_a_missing_or_wrong_signature_is_refused_and_nothing_stored(db, signature):
    status, _headers, content = call(body_of("wamid.door.2"), signature=signature)
    assert (status, content) == (403, b"invalid signature")
    assert not WebhookDelivery.objects.exists()


def test_a_body_over_the_limit_is_refused_before_it_is_read(db, settings):
    settings.WHATSAPP_WEBHOOK_MAX_BYTES = 100
    status, _headers, content = call(b"x" * 101)
    assert status == 413
    assert content.decode() == "The body is larger than a WhatsApp webhook can be."
    assert not WebhookDelivery.objects.exists()


def test_a_host_outside_allowed_hosts_is_refused(db):
    status, _headers, _content = call(body_of("wamid.door.3"), host="evil.example.net")
    assert status == 400
    assert not WebhookDelivery.objects.exists()


def test_the_verification_handshake_still_goes_to_django(db, settings):
    settings.WHATSAPP_VERIFY_TOKEN = "verify-me"
    query = "hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=4711"
    status, _headers, content = call(b"", method="GET", signature=None, query=query)
    assert (status, content) == (200, b"4711")


def test_concurrent_requests_are_each_committed_before_their_200(transactional_db):
    """Threads of one process share INSERTs (group commit); each answer still means stored."""
    needs_postgresql(
        "threads writing at once (SQLite's shared in-memory test database locks tables)"
    )
    bodies = [body_of(f"wamid.door.c{i}") for i in range(24)]
    bodies += bodies[:6]  # retries arriving at the same time as the originals
    answers: list[int] = []
    go = threading.Barrier(len(bodies))

    def post(body: bytes) -> None:
        go.wait()
        try:
            answers.append(call(body)[0])
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200] * len(bodies)
    stored = sorted(bytes(b) for b in WebhookDelivery.objects.values_list("body", flat=True))
    assert stored == sorted(bodies[:24])
