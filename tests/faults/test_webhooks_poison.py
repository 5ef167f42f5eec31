"""Poison deliveries among 1,000 valid ones, four drains in separate processes: each
poison body is set aside with its reason and no valid webhook waits for it.

What was seen on main: one validly signed status with ``"timestamp":
"999999999999999999999999999999"`` (or ``10**20``, or a body of 100,000 nested
brackets) raised out of the drain, the batch rolled back, the tick retried it
every 2 s forever and every later webhook waited behind it.
"""

from __future__ import annotations

import json
import time

import pytest

from campaigns.models import Send, SendStatus, WebhookDelivery
from tests.conftest import needs_postgresql
from tests.faults.webhooks_helpers import (
    BASE,
    Drains,
    sent_campaign,
    status_body,
    store,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

VALID = 1_000


def poison(wamid: str, phone: str) -> dict[str, bytes]:
    """Signed bodies no WhatsApp would send, each with the word its sentence must contain."""
    def timestamp(value) -> bytes:
        body = json.loads(status_body(wamid, "read", phone, BASE))
        body["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = value
        return json.dumps(body).encode()

    return {
        "timestamp": timestamp("999999999999999999999999999999"),
        "timestamp ": timestamp(10**20),
        "timestamp  ": timestamp(-1),
        "nested": b"[" * 100_000 + b"]" * 100_000,
        "UTF-8": b'{"entry": [{"changes": [{"value": {"statuses": "\xff"}}]}]}',
        "not JSON": b"{not json",
        "128": status_body("wamid." + "x" * 300, "delivered", phone, BASE),
        "errors": status_body(wamid, "failed", phone, BASE).replace(
            b'"status": "failed"', b'"status": "failed", "errors": "boom"'),
        "entry": b'{"entry": "everything"}',
    }


def test_poison_among_a_thousand_valid_webhooks_delays_none(tmp_path):
    needs_postgresql()
    campaign, sends = sent_campaign(VALID)
    bad = poison(sends[0].wamid, sends[0].phone)
    valid = [status_body(s.wamid, "delivered", s.phone, BASE + i) for i, s in enumerate(sends)]
    # Poison first (every drain's first batch holds some) and spread through the rest.
    bodies = list(bad.values())[:3] + valid[:500] + list(bad.values())[3:] + valid[500:]
    store(bodies)
    drains = Drains(go_file=tmp_path / "go")
    try:
        drains.start(4)
        started = time.monotonic()
        drains.go()
        reports = drains.wait(timeout=90)
        seconds = time.monotonic() - started
    finally:
        drains.stop()

    assert not WebhookDelivery.objects.filter(processed_at__isnull=True).exists()
    assert Send.objects.filter(campaign=campaign, status=SendStatus.DELIVERED).count() == VALID
    set_aside = {bytes(d.body): d.error for d in WebhookDelivery.objects.exclude(error="")}
    assert len(set_aside) == len(bad)
    for word, body in bad.items():
        assert word.strip() in set_aside[body], (word, set_aside[body])
        assert set_aside[body].endswith(".")
    applied = WebhookDelivery.objects.filter(error="").count()
    assert applied == VALID
    print(f"\n{VALID} valid status webhooks and {len(bad)} poison bodies, 4 drains: "
          f"{applied} applied, {len(set_aside)} set aside with their reason, none waiting, "
          f"in {seconds:.1f} s ({sum(r['handled'] for r in reports)} handled)")
