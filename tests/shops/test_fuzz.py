"""Hostile input never gives a 500: hypothesis throws bodies, topics and signatures at the
shop webhook endpoints (≥ 500 requests in all) and every answer must be a deliberate one."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.shops.payloads import SHOPIFY_CHECKOUT, SHOPIFY_ORDER, WOO_ORDER, copy_of

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
# Values that stress the readers: huge or odd numbers, NUL bytes, letters in phones, dates.
NASTY = st.sampled_from([
    "1e400", "-1e400", "NaN", "Infinity", "9" * 40, "0x1F", "", " ", "\x00", "12\x0034",
    "+49 176 12345678", "+4917612345678\x00", "555-555-SHIP", "+" + "9" * 30, "٠١٧٦١٢٣٤٥٦٧٨",
    "2026-02-30T10:00:00", "9999-12-31T23:59:59Z", "0001-01-01", "2026-11-30T19:00:00+25:00",
    "€€€", "DROP TABLE crm_contact;", "𝓛𝓲𝓹𝓹𝓮𝓷𝓼𝓽𝓲𝓯𝓽" * 20]) | JSON
FIELDS = ["id", "phone", "created_at", "date_created", "date_created_gmt", "currency",
          "total_price", "total", "status", "cancelled_at", "completed_at", "line_items",
          "customer", "billing_address", "shipping_address", "billing", "shipping"]
LINE_FIELDS = ["title", "name", "price", "quantity", "total", "sku", "product_id"]
def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated(draw, base: dict) -> dict:
    """A real payload with some fields (and line-item or address fields) replaced."""
    data = copy_of(base)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        data[key] = draw(NASTY)
    for key in draw(st.lists(st.sampled_from(LINE_FIELDS), max_size=3)):
        items = data.get("line_items")
        if isinstance(items, list) and items and isinstance(items[0], dict):
            items[0][key] = draw(NASTY)
    for part in ("customer", "billing_address", "shipping_address", "billing", "shipping"):
        if isinstance(data.get(part), dict) and draw(st.booleans()):
            data[part]["phone"] = draw(NASTY)
            data[part]["country_code" if "address" in part or part == "customer"
                       else "country"] = draw(st.sampled_from(["DE", "AT", "XX", "", "de", "1"])
                                              | JSON)
    return data


def _run(deliver, connection, bodies, topics, examples: int) -> Counter:
    seen: Counter = Counter()

    @fuzz_settings(examples)
    @given(data=bodies, topic=topics, sign=st.sampled_from([True, True, True, False, "x"]))
    def run(data, topic, sign):
        response = deliver(connection, topic, data, sign=sign)
        seen[response.status_code] += 1
        assert response.status_code != 500

    run()
    return seen


def test_shopify_endpoint_never_answers_500(deliver, shopify):
    bodies = mutated(SHOPIFY_ORDER) | mutated(SHOPIFY_CHECKOUT) | JSON | st.binary(max_size=200)
    topics = st.sampled_from(["orders/create", "checkouts/create", "orders/paid"]) | st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    seen = _run(deliver, shopify, bodies, topics, 320)
    print("shopify fuzz:", dict(seen))
    assert sum(seen.values()) == 320 and 500 not in seen
    assert seen[200] > 100  # most inputs were signed and reached the readers


def test_woocommerce_endpoint_never_answers_500(deliver, woo):
    bodies = mutated(WOO_ORDER) | JSON | st.binary(max_size=200) | st.just(b"webhook_id=7")
    topics = st.sampled_from(["order.created", "order.updated", "action.wc_webhook_ping"])
    seen = _run(deliver, woo, bodies, topics, 220)
    print("woocommerce fuzz:", dict(seen))
    assert sum(seen.values()) == 220 and 500 not in seen
    assert seen[200] > 60
