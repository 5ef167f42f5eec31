from __future__ import annotations

import json
import time

import pytest

from campaigns.backends import locmem
from campaigns.entrypoints.services import entry_point_create
from campaigns.intake import app_secret
from tests.campaigns.fake_cloud_api import message_payload, sign

URL = "/webhooks/whatsapp/"
BUSINESS = "+49 30 1234567"


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.WHATSAPP_APP_SECRET = "test-app-secret"
    settings.WHATSAPP_DISPLAY_PHONE_NUMBER = BUSINESS
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def outbox():
    return locmem.outbox


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST a payload signed like Meta's; the drain (and what it queues) runs on commit."""

    def _post(payload: dict):
        body = json.dumps(payload).encode()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(URL, body, content_type="application/json",
                                   HTTP_X_HUB_SIGNATURE_256=sign(body, app_secret()))
        assert response.status_code == 200
        return response

    return _post


@pytest.fixture
def message():
    """``message(sender, text, id=..., referral=..., timestamp=...)``: an inbound webhook body."""
    counter = iter(range(1, 100_000))

    def _message(sender: str, text: str, *, message_id: str = "", referral: dict | None = None,
                 timestamp: int | None = None) -> dict:
        payload = message_payload(sender, text, message_id=message_id or
                                  f"wamid.test{next(counter)}",
                                  timestamp=timestamp or int(time.time()))
        if referral is not None:
            payload["entry"][0]["changes"][0]["value"]["messages"][0]["referral"] = referral
        return payload

    return _message


@pytest.fixture
def make_entry_point(db, make_tag):
    counter = iter(range(1, 10_000))

    def _make(**fields):
        n = next(counter)
        fields.setdefault("name", f"Entry point {n}")
        fields.setdefault("code", f"CODE{n:03d}")
        if "tags" not in fields:
            fields["tags"] = [make_tag(name=f"Quelle {n}")]
        extra = {k: fields.pop(k) for k in ("active", "active_from", "active_until")
                 if k in fields}
        entry_point = entry_point_create(**fields)
        if extra:
            for key, value in extra.items():
                setattr(entry_point, key, value)
            entry_point.save()
        return entry_point

    return _make
