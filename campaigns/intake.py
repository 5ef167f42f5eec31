"""Webhook intake, in the request: check the signature, store the body once, queue a drain.

It does the least possible: the size is checked, the signature is checked over
the raw body, the body is stored once (its SHA-256 is unique, so Meta's retries
and replays are stored once; the row is committed before the 200), and a worker
applies it later (``campaigns.webhooks``), where a body that cannot be applied is
set aside with its reason. Nothing here reads the body, so no content can make the
request fail. The sandbox sender posts its webhooks through here too.

Two doors lead here. ``wsgi_intake`` is a bare WSGI handler that ``config/wsgi.py``
routes ``POST /webhooks/whatsapp/`` to, past Django's middleware (sessions, locale,
CSRF, auth, axes, prometheus' per-view timing): none of them has anything to say
about a signed machine-to-machine POST, and together they cost more than the rest of
the request (docs/benchmarks.md, "Webhook intake"). The Django view
(``campaigns.views.whatsapp_webhook``) answers everything else on that address
(Meta's GET handshake) and the test client; both call ``webhook_receive``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http.request import split_domain_port, validate_host
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns.metrics import WEBHOOKS_RECEIVED
from campaigns.models import WebhookDelivery
from crm.jobs import enqueue

logger = logging.getLogger(__name__)

DRAIN_TASK = "campaigns.tasks.webhooks_drain_task"
DRAIN_FLAG, DRAIN_FLAG_SECONDS = "campaigns:webhooks:drain-queued", 10
FLAG_MEMO_SECONDS = 0.25  # see _drain_soon
_flag_seen_at = -1e9  # per process: when the flag was last found set
PATH = "/webhooks/whatsapp/"
SIGNATURE_HEADER = "X-Hub-Signature-256"


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def app_secret() -> str:
    """The Meta app secret; in DEBUG without one, a secret derived from SECRET_KEY (sandbox)."""
    if settings.WHATSAPP_APP_SECRET:
        return settings.WHATSAPP_APP_SECRET
    if settings.DEBUG:
        return hashlib.sha256(f"sandbox:{settings.SECRET_KEY}".encode()).hexdigest()
    return ""


def sign(body: bytes, secret: str | None = None) -> str:
    secret = app_secret() if secret is None else secret
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(body: bytes, header: str | None) -> bool:
    secret = app_secret()
    if not secret or not header or not header.startswith("sha256="):
        return False
    # As bytes: compare_digest refuses str with non-ASCII characters (a hostile header).
    return hmac.compare_digest(sign(body, secret).encode(), header.encode("utf-8", "replace"))


def webhook_receive(
    *, stream: Readable, content_length: str | None, signature: str | None, burst: bool = False
) -> tuple[int, str]:
    """Check and store one POSTed webhook; return the HTTP status and the answer's text.

    200 only once the body is committed (or was stored before): Meta retries anything
    else, so a database error is raised to the caller, which answers 500. ``burst``:
    see ``webhook_store``.
    """
    limit = settings.WHATSAPP_WEBHOOK_MAX_BYTES
    body = _body(stream, content_length, limit)
    if body is None:
        WEBHOOKS_RECEIVED.labels(outcome="too_large").inc()
        logger.warning("webhook over %d bytes refused", limit)
        return 413, _("The body is larger than a WhatsApp webhook can be.")
    if not signature_valid(body, signature):
        WEBHOOKS_RECEIVED.labels(outcome="bad_signature").inc()
        logger.warning("webhook with a missing or invalid signature rejected")
        return 403, "invalid signature"
    webhook_store(body=body, burst=burst)
    return 200, "ok"


def _body(stream: Readable, content_length: str | None, limit: int) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes.

    Read from the stream with our own limit: Meta's bodies may exceed Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB), which applies to forms.
    """
    try:
        declared = int(content_length or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = stream.read(limit + 1)
    return None if len(body) > limit else body


def webhook_store(*, body: bytes, burst: bool = False) -> WebhookDelivery | None:
    """Store a verified body once; return None when it was stored before (a replay).

    The row is committed when this returns (autocommit), unless the caller holds a
    transaction: ``INSERT … ON CONFLICT (sha256) DO NOTHING RETURNING`` needs no
    savepoint, no BEGIN/COMMIT round trips and no exception for a replay.

    ``burst`` (the WSGI door): the request threads of a process share their INSERTs
    (``_group_store``: the bodies that arrive while one INSERT runs go into the next,
    one statement and one commit for all of them), and the drain flag's round trip is
    skipped while this process has just found a drain queued (``_drain_soon``).
    """
    digest = hashlib.sha256(body).hexdigest()
    now = timezone.now()
    if burst and not connection.in_atomic_block:
        pk = _group_store(_Row(body, digest, now))
    else:
        pk = _insert([_Row(body, digest, now)]).get(digest)
    if pk is None:
        WEBHOOKS_RECEIVED.labels(outcome="duplicate").inc()
        return None
    WEBHOOKS_RECEIVED.labels(outcome="stored").inc()
    _drain_soon(burst=burst)
    return WebhookDelivery(pk=pk, body=body, sha256=digest, received_at=now)


class _Row:
    __slots__ = ("body", "digest", "done", "error", "lead", "now", "pk")

    def __init__(self, body: bytes, digest: str, now: datetime) -> None:
        self.body, self.digest, self.now = body, digest, now
        self.pk: int | None = None
        self.error: BaseException | None = None
        self.lead = False
        self.done = threading.Event()


def _insert(rows: list[_Row]) -> dict[str, int]:
    """INSERT the rows in one statement; return sha256 → id of those not stored before."""
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    values = ", ".join(["(%s, %s, %s, '', 0)"] * len(rows))
    params: list[Any] = []
    for row in rows:
        params += [row.body, row.digest, connection.ops.adapt_datetimefield_value(row.now)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (body, sha256, received_at, error, attempts) VALUES {values} "
            "ON CONFLICT (sha256) DO NOTHING RETURNING sha256, id",
            params,
        )
        return dict(cursor.fetchall())


_group_lock = threading.Lock()
_group_waiting: list[_Row] = []
_group_busy = False  # a thread is storing a group (it leads)


def _group_store(row: _Row) -> int | None:
    """Store ``row`` together with the rows other threads of this process hand in meanwhile.

    Group commit in the process: the first thread to arrive leads and INSERTs every row
    waiting (its own included) in one statement; rows that arrive meanwhile wait for the
    next group, led by the first of them once the current one is committed. Every thread
    returns only after its own row was committed (or raises that INSERT's error), so the
    200 still means stored. Return the row's id, or None when it was stored before.
    """
    global _group_busy
    with _group_lock:
        _group_waiting.append(row)
        row.lead = not _group_busy
        _group_busy = True
    if not row.lead:
        row.done.wait()
    if row.lead:
        with _group_lock:
            group = _group_waiting[:]
            _group_waiting.clear()
        try:
            stored = _insert(group)
        except BaseException as exc:  # every row of the group gets the error: each answers 500
            for member in group:
                member.error = exc
        else:
            for member in group:  # a body twice in one group: the first is stored
                member.pk = stored.pop(member.digest, None)
        finally:
            with _group_lock:
                if _group_waiting:
                    _group_waiting[0].lead = True  # the next group's leader
                    _group_waiting[0].done.set()
                else:
                    _group_busy = False
            for member in group:
                if member is not row:
                    member.done.set()
    if row.error is not None:
        raise row.error
    return row.pk


def _drain_soon(*, burst: bool = False) -> None:
    """Queue a drain unless one is queued already; beat's tick is the backstop.

    One drain queued at a time instead of a task per webhook: under a burst of statuses
    most requests only try to set this flag (one Redis round trip), and the worker
    applies them in batches. The drain clears the flag as it starts. With Redis or the
    broker unreachable the body is stored all the same, and the tick (every 2 s) queues
    the drain once they are back.

    With ``burst``, once this process found the flag set (a drain is queued and has not
    started), it does not ask again for ``FLAG_MEMO_SECONDS``: that drain will see every row
    committed before it starts. Under a burst this saves most requests their Redis
    round trip; a webhook stored in the instant after a drain began and after its last
    look is applied by the next drain another request or the tick queues.
    """
    global _flag_seen_at
    now = time.monotonic()
    if burst and now - _flag_seen_at < FLAG_MEMO_SECONDS:
        return
    if cache.add(DRAIN_FLAG, 1, timeout=DRAIN_FLAG_SECONDS):
        enqueue(DRAIN_TASK)
    else:
        _flag_seen_at = now


# --- The bare WSGI door (config/wsgi.py) --------------------------------------------------

StartResponse = Callable[..., Any]


def wsgi_intake(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``POST /webhooks/whatsapp/`` without Django's request cycle.

    What the middleware would have done that matters here is done here: the Host
    header is checked against ``ALLOWED_HOSTS``, and the database connection is kept
    per thread as ``CONN_MAX_AGE`` says, closed after an error so the next request
    reconnects (instead of a ``SELECT 1`` health check before every request).
    """
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return _answer(start_response, 400, "bad request (host not allowed)")
    _connection_age_check()
    try:
        with translation.override(settings.LANGUAGE_CODE):  # not the thread's last language
            status, text = webhook_receive(
                stream=environ["wsgi.input"],
                content_length=environ.get("CONTENT_LENGTH"),
                signature=environ.get("HTTP_X_HUB_SIGNATURE_256"),
                burst=True,
            )
    except DatabaseError:
        logger.exception("webhook could not be stored; WhatsApp will send it again")
        connection.close_if_unusable_or_obsolete()
        return _answer(start_response, 500, "not stored, try again")
    return _answer(start_response, status, text)


def _connection_age_check() -> None:
    """Close this thread's connection once it is older than ``CONN_MAX_AGE`` (as
    Django does at a request's start), without the health check's extra round trip:
    a broken connection fails the INSERT, which is answered 500 and retried by Meta."""
    if connection.connection is None or connection.in_atomic_block:
        return
    close_at = getattr(connection, "close_at", None)
    if (close_at is not None and time.monotonic() >= close_at) or not connection.get_autocommit():
        connection.close()


def _answer(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    data = text.encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
    )
    return [data]
