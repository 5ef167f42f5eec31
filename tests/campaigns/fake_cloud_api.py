"""A fake WhatsApp Cloud API on loopback, speaking the reference's JSON.

    with FakeCloudAPI(token="t") as api:
        api.inject(131056, to="+4915...", times=2)   # the next two sends to that number fail
        api.url  # -> http://127.0.0.1:85xx
        api.requests, api.per_second()

Optionally it enforces a throughput limit (130429 above ``max_mps`` in any
1-second window), knows templates (132001 for unknown ones, 132000 for a wrong
parameter count), and posts signed status webhooks (sent/delivered/read) for
every accepted message to ``webhook_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import queue
import secrets
import socket
import threading
import time
from collections import Counter, deque
from http import HTTPStatus

import httpx

PORTS = range(8500, 8600)

TITLES = {
    130429: ("Rate limit hit", 400),
    131056: ("(Business Account, Consumer Account) pair rate limit hit", 400),
    131048: ("Spam rate limit hit", 400),
    131026: ("Message Undeliverable", 400),
    131049: ("This message was not delivered to maintain healthy ecosystem engagement", 400),
    131050: ("User stopped marketing messages", 400),
    132000: ("Number of parameters does not match the expected number of params", 400),
    132001: ("Template name does not exist in the translation", 404),
    368: ("Temporarily blocked for policies violations", 403),
    131000: ("Something went wrong", 500),
    131016: ("Service unavailable", 503),
}


def error_body(code: int) -> tuple[int, dict]:
    title, http = TITLES.get(code, ("Error", 400))
    return http, {"error": {"message": f"(#{code}) {title}", "type": "OAuthException",
                            "code": code, "error_data": {"messaging_product": "whatsapp",
                                                         "details": title},
                            "fbtrace_id": "AFakeTrace"}}


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def status_payload(wamid: str, status: str, recipient: str, **options) -> dict:
    return _envelope("statuses", [status_item(wamid, status, recipient, **options)])


def status_item(wamid: str, status: str, recipient: str, *, timestamp: int | None = None,
                callback_data: str = "", error_code: int | None = None) -> dict:
    item = {"id": wamid, "status": status, "timestamp": str(timestamp or int(time.time())),
            "recipient_id": recipient.lstrip("+")}
    if callback_data:
        item["biz_opaque_callback_data"] = callback_data
    if error_code:
        title = TITLES.get(error_code, ("Error", 400))[0]
        item["errors"] = [{"code": error_code, "title": title, "message": title,
                           "error_data": {"details": title},
                           "href": "https://developers.facebook.com/docs/whatsapp/"}]
    return item


def message_payload(sender: str, text: str, *, message_id: str, context: str = "",
                    timestamp: int | None = None, kind: str = "text") -> dict:
    item = {"from": sender.lstrip("+"), "id": message_id,
            "timestamp": str(timestamp or int(time.time())), "type": kind}
    if kind == "text":
        item["text"] = {"body": text}
    elif kind == "button":
        item["button"] = {"payload": text, "text": text}
    if context:
        item["context"] = {"from": "4930000000", "id": context}
    return _envelope("messages", [item], contacts=[{"profile": {"name": "Test"},
                                                   "wa_id": sender.lstrip("+")}])


def preference_payload(wa_id: str, value: str) -> dict:
    return _envelope("user_preferences", [{
        "wa_id": wa_id.lstrip("+"), "detail": f"User requested to {value} marketing messages",
        "category": "marketing_messages", "value": value, "timestamp": int(time.time())}])


def _envelope(key: str, items: list, **extra) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881",
                               "phone_number_id": "106540352242922"},
                  **extra, key: items}, "field": "messages"}]}]}


class FakeCloudAPI:
    def __init__(self, *, token: str = "test-token", max_mps: int | None = None,
                 templates: dict[str, int] | None = None, webhook_url: str = "",
                 app_secret: str = "", latency: float = 0.0,
                 webhook_statuses: tuple[str, ...] = ("sent", "delivered", "read"),
                 webhook_batch: int = 1):
        self.token, self.max_mps, self.templates = token, max_mps, templates
        self.webhook_url, self.app_secret, self.latency = webhook_url, app_secret, latency
        # Statuses per webhook: Meta sends one; the schema's ``statuses`` is a list, and a
        # benchmark that is not about the intake may post up to this many at once.
        self.webhook_statuses, self.webhook_batch = webhook_statuses, webhook_batch
        self.requests: list[dict] = []  # accepted and refused, with "at" and "code"
        self._injected: deque[tuple[int, str | None]] = deque()
        self._window: deque[float] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # Real wamids are unique forever; so are ours across servers sharing one database.
        self._prefix = secrets.token_hex(4)
        self._webhooks: queue.Queue = queue.Queue()
        self.socket = self._bind()
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    @staticmethod
    def _bind() -> socket.socket:
        for port in PORTS:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen(1024)
            return sock
        raise RuntimeError("no free port in 8500-8599")

    # --- control ---------------------------------------------------------------------
    def inject(self, code: int, *, to: str | None = None, times: int = 1) -> None:
        """Make the next ``times`` sends (to ``to``, or to anyone) fail with ``code``."""
        with self._lock:
            for _ in range(times):
                self._injected.append((code, to.lstrip("+") if to else None))

    def accepted(self) -> list[dict]:
        return [r for r in self.requests if r["code"] is None]

    def per_second(self) -> Counter:
        """Accepted requests per whole second since the first one."""
        accepted = self.accepted()
        if not accepted:
            return Counter()
        start = accepted[0]["at"]
        return Counter(int(r["at"] - start) for r in accepted)

    def max_in_any_window(self, seconds: float = 1.0) -> int:
        times = sorted(r["at"] for r in self.accepted())
        best, left = 0, 0
        for right, at in enumerate(times):
            while at - times[left] >= seconds:
                left += 1
            best = max(best, right - left + 1)
        return best

    def post_webhook(self, payload: dict, url: str | None = None,
                     client: httpx.Client | None = None) -> httpx.Response:
        body = json.dumps(payload).encode()
        return (client or httpx).post(url or self.webhook_url, content=body, timeout=10, headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, self.app_secret)})

    # --- serving -----------------------------------------------------------------------
    def respond(self, path: str, headers, body: bytes) -> tuple[int, dict]:
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"error": {"message": "Invalid OAuth access token.",
                                   "type": "OAuthException", "code": 190}}
        if not path.endswith("/messages"):
            return 404, {"error": {"message": "Unknown path", "code": 100}}
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {"error": {"message": "Invalid JSON", "code": 100}}
        to, now = data.get("to", ""), time.time()
        with self._lock:
            code = self._pick_error(to, now, data)
            self.requests.append({"at": now, "to": to, "body": data, "code": code})
            if code is not None:
                return error_body(code)
            if self.max_mps:
                self._window.append(now)
            wamid = f"wamid.fake.{self._prefix}.{next(self._ids)}"
            self.requests[-1]["wamid"] = wamid
        if self.webhook_url:
            self._webhooks.put((wamid, to, data.get("biz_opaque_callback_data", "")))
        return 200, {"messaging_product": "whatsapp",
                     "contacts": [{"input": to, "wa_id": to}],
                     "messages": [{"id": wamid, "message_status": "accepted"}]}

    def _pick_error(self, to: str, now: float, data: dict) -> int | None:
        for index, (code, target) in enumerate(self._injected):
            if target is None or target == to:
                del self._injected[index]
                return code
        if self.max_mps:
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= self.max_mps:
                return 130429
        if self.templates is not None and data.get("type") == "template":
            name = data["template"]["name"]
            if name not in self.templates:
                return 132001
            params = [p for c in data["template"].get("components", [])
                      if c.get("type") == "body" for p in c.get("parameters", [])]
            if len(params) != self.templates[name]:
                return 132000
        return None

    def _post_webhooks(self) -> None:
        with httpx.Client() as client:  # keep-alive: one connection for all of them
            while (batch := self._next_webhooks()):
                for status in self.webhook_statuses:
                    items = [status_item(wamid, status, to, callback_data=data)
                             for wamid, to, data in batch]
                    with contextlib.suppress(httpx.HTTPError):
                        self.post_webhook(_envelope("statuses", items), client=client)

    def _next_webhooks(self) -> list[tuple[str, str, str]]:
        """The next accepted messages to post statuses for (empty: the server stopped)."""
        batch = []
        while len(batch) < self.webhook_batch:
            try:
                item = self._webhooks.get(timeout=None if not batch else 0)
            except queue.Empty:
                break
            if item is None:  # stop after posting this batch
                if batch:
                    self._webhooks.put(None)
                break
            batch.append(item)
        return batch

    def __enter__(self) -> FakeCloudAPI:
        # One asyncio loop in a thread of its own: a request costs a few tens of
        # microseconds, so the fake stays far above any rate a benchmark asks of it.
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        if self.webhook_url:
            self.poster = threading.Thread(target=self._post_webhooks, daemon=True)
            self.poster.start()
        return self

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.aserver = self.loop.run_until_complete(
            self.loop.create_server(lambda: _Protocol(self), sock=self.socket))
        ready.set()
        self.loop.run_forever()
        self.aserver.close()
        self.loop.run_until_complete(self.aserver.wait_closed())
        self.loop.close()

    def __exit__(self, *exc) -> None:
        if self.webhook_url:
            self._webhooks.put(None)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class _Headers(dict):
    """Request headers by lower-cased name; ``get`` takes any case."""

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, enough for the clients here: a request line, headers,
    a ``Content-Length`` body (no chunked bodies), one response per request in order."""

    def __init__(self, api: FakeCloudAPI):
        self.api, self.buffer = api, b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = _Headers((k.strip().lower(), v.strip()) for k, _, v in
                               (line.partition(":") for line in head[1:]))
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            method, path = [*head[0].split(" "), "", ""][:2]
            answer = self._response(method, path, headers, body)
            if self.api.latency:  # the same delay for each: answers stay in order
                asyncio.get_running_loop().call_later(self.api.latency, self._write, *answer)
            else:
                self._write(*answer)

    def _response(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict]:
        if method != "POST":
            return 405, {"error": {"message": "Method not allowed", "code": 100}}
        return self.api.respond(path, headers, body)

    def _write(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n")
        if not self.transport.is_closing():
            self.transport.write(head.encode() + raw)


def main() -> None:
    """``python -m tests.campaigns.fake_cloud_api PORT`` — run standalone (benchmarks)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--max-mps", type=int, default=None)
    parser.add_argument("--webhook-url", default="")
    parser.add_argument("--app-secret", default="")
    args = parser.parse_args()
    with FakeCloudAPI(token=args.token, max_mps=args.max_mps, webhook_url=args.webhook_url,
                      app_secret=args.app_secret) as api:
        print(api.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
