"""Starter rule 3 reacting to a real-shaped shop order: cart abandoned → purchased.

The first test runs in-process (eager tasks); the second sends the order over HTTP
to the test server while a real Celery worker (Redis broker, PostgreSQL) runs the
rule, and measures the time from the order to the tag.
"""

from __future__ import annotations

import time

import pytest

from crm.models import Contact
from tagging.models import TagAssignment
from tagging.rules.starter import rules_load_starter
from tests.shops.payloads import SHOPIFY_CHECKOUT, SHOPIFY_ORDER, copy_of
from tests.tagging.test_rules_live import worker  # noqa: F401  (a real Celery worker)

PHONE = "+4917612345678"


def tags_of(phone: str) -> set[str]:
    return set(TagAssignment.objects.filter(contact__phone=phone)
               .values_list("tag__name", flat=True))


def order() -> dict:
    data = copy_of(SHOPIFY_ORDER)
    data["customer"]["phone"] = "+49 176 12345678"
    return data


def test_rule_3_turns_an_abandoned_cart_into_a_dated_purchase_tag(deliver, shopify):
    rules_load_starter()
    deliver(shopify, "checkouts/create", SHOPIFY_CHECKOUT)
    assert "Warenkorbabbruch" in tags_of(PHONE)

    deliver(shopify, "orders/create", order())

    tags = tags_of(PHONE)
    assert "Warenkorbabbruch" not in tags
    assert "Gekauft 2026-11 Mascara Deluxe" in tags
    assert Contact.objects.get(phone=PHONE).purchase_count == 1


@pytest.mark.django_db(transaction=True)
def test_rule_3_reacts_to_a_shop_order_within_seconds_with_a_real_worker(
        worker, live_server, shopify):  # noqa: F811
    import httpx

    from tests.shops.payloads import body_of, signature

    rules_load_starter()
    url = f"{live_server.url}/webhooks/shop/{shopify.slug}/"

    def post(topic: str, data: dict) -> httpx.Response:
        body = body_of(data)
        return httpx.post(url, content=body, timeout=10, headers={
            "Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": signature(body, shopify.secret)})

    assert post("checkouts/create", SHOPIFY_CHECKOUT).json()["outcome"] == "stored"
    deadline = time.monotonic() + 10
    while "Warenkorbabbruch" not in tags_of(PHONE) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert post("orders/create", order()).json()["outcome"] == "stored"
    while time.monotonic() - started < 10:
        tags = tags_of(PHONE)
        if "Gekauft 2026-11 Mascara Deluxe" in tags and "Warenkorbabbruch" not in tags:
            break
        time.sleep(0.05)
    latency = time.monotonic() - started
    assert "Gekauft 2026-11 Mascara Deluxe" in tags_of(PHONE)
    assert "Warenkorbabbruch" not in tags_of(PHONE)
    assert latency < 5, f"rule 3 took {latency:.1f} s"
    print(f"shop order → rule 3 tags: {latency * 1000:.0f} ms")
