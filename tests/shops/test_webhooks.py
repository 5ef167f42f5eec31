"""Shopify and WooCommerce webhooks: signatures, replays, finding the customer, the events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm.models import ConsentStatus, Contact, Event
from crm.shops.models import ShopConnection
from tests.shops.payloads import (
    SHOPIFY_CHECKOUT,
    SHOPIFY_ORDER,
    WOO_ORDER,
    body_of,
    copy_of,
    signature,
)

PHONE = "+4917612345678"


def order_with_phone(where: str, phone: str = "+49 176 12345678") -> dict:
    order = copy_of(SHOPIFY_ORDER)
    if where == "order":
        order["phone"] = phone
    else:
        order[where]["phone"] = phone
    return order


def test_signed_shopify_order_becomes_a_purchase_of_the_customer(deliver, shopify, make_contact):
    contact = make_contact(phone=PHONE)
    response = deliver(shopify, "orders/create", order_with_phone("customer"))

    assert response.status_code == 200
    assert response.json()["outcome"] == "stored"
    event = Event.objects.get()
    assert (event.contact, event.kind, event.amount, event.currency) == (
        contact, "purchase", Decimal("403.00"), "EUR")
    assert event.product == "Mascara Deluxe"  # the line with the largest total
    assert [p["title"] for p in event.payload["products"]] == ["Lippenstift Rosé",
                                                               "Mascara Deluxe"]
    assert event.source_id == "onlineshop:order:820982911946154508"
    assert event.occurred_at.isoformat() == "2026-11-30T18:00:00+00:00"
    contact.refresh_from_db()
    assert (contact.purchase_count, contact.total_spent) == (1, Decimal("403.00"))
    shopify.refresh_from_db()
    assert shopify.last_outcome == "stored: order 820982911946154508"


@pytest.mark.parametrize("where", ["customer", "order", "billing_address", "shipping_address"])
def test_the_customer_is_found_by_the_phone_of_customer_order_billing_or_shipping(
        deliver, shopify, make_contact, where):
    contact = make_contact(phone=PHONE)
    assert deliver(shopify, "orders/create", order_with_phone(where)).json()["outcome"] == \
        "stored"
    assert Event.objects.get().contact == contact


def test_a_local_number_is_read_in_the_address_country(deliver, shopify, make_contact):
    contact = make_contact(phone="+436641234567")
    order = order_with_phone("shipping_address", "0664 1234567")
    order["shipping_address"]["country_code"] = "AT"
    deliver(shopify, "orders/create", order)
    assert Event.objects.get().contact == contact


@pytest.mark.parametrize("bad", ["", "wrong", "c2lnbmF0dXJl", None])
def test_a_missing_or_wrong_signature_is_refused_and_stores_nothing(deliver, shopify, bad):
    response = deliver(shopify, "orders/create", order_with_phone("customer"),
                       sign=bad if bad is not None else False)
    assert response.status_code == 401
    assert not Event.objects.exists() and not Contact.objects.exists()


def test_a_signature_with_another_secret_or_over_another_body_is_refused(deliver, shopify):
    body = body_of(order_with_phone("customer"))
    assert deliver(shopify, "orders/create", body,
                   sign=signature(body, "other-secret")).status_code == 401
    assert deliver(shopify, "orders/create", body + b" ",
                   sign=signature(body, "shpss_4f1d0c2e9b7a")).status_code == 401
    assert not Event.objects.exists()


def test_a_replayed_order_is_stored_once(deliver, shopify, make_contact):
    make_contact(phone=PHONE)
    order = order_with_phone("customer")
    assert deliver(shopify, "orders/create", order).json()["outcome"] == "stored"
    again = deliver(shopify, "orders/create", order)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    # Re-sent with another body (Shopify re-serialises): same order id, still once.
    changed = copy_of(order, note="re-sent")
    assert deliver(shopify, "orders/create", changed).json()["outcome"] == "duplicate"
    assert Event.objects.count() == 1
    assert Contact.objects.get(phone=PHONE).purchase_count == 1


def test_an_unknown_customer_becomes_a_contact_without_consent(deliver, shopify):
    assert deliver(shopify, "orders/create", order_with_phone("billing_address")).json()[
        "outcome"] == "stored"
    contact = Contact.objects.get(phone=PHONE)
    assert contact.consent_status == ConsentStatus.UNKNOWN  # never marketed to by this
    assert contact.purchase_count == 1


def test_a_connection_may_refuse_to_create_contacts_then_nothing_is_stored(deliver, shopify):
    ShopConnection.objects.filter(pk=shopify.pk).update(create_contacts=False)
    shopify.refresh_from_db()
    response = deliver(shopify, "orders/create", order_with_phone("customer"))
    assert response.status_code == 200  # the shop must not disable the webhook
    assert response.json()["outcome"] == "unknown_customer"
    assert not Event.objects.exists() and not Contact.objects.exists()


def test_an_order_without_a_valid_phone_is_acknowledged_and_not_stored(deliver, shopify):
    response = deliver(shopify, "orders/create", SHOPIFY_ORDER)  # only "555-555-SHIP"
    assert response.status_code == 200 and response.json()["outcome"] == "no_phone"
    assert not Event.objects.exists()
    shopify.refresh_from_db()
    assert "no valid phone number" in shopify.last_outcome


def test_a_shopify_checkout_becomes_cart_abandoned_and_a_completed_one_is_ignored(
        deliver, shopify):
    assert deliver(shopify, "checkouts/create", SHOPIFY_CHECKOUT).json()["outcome"] == "stored"
    event = Event.objects.get()
    assert (event.kind, event.product, event.amount) == (
        "cart_abandoned", "Lippenstift Rosé", Decimal("19.00"))
    assert event.source_id == "onlineshop:checkout:981820079255243537"
    completed = copy_of(SHOPIFY_CHECKOUT, id=1, completed_at="2026-11-30T18:45:00+01:00")
    assert deliver(shopify, "checkouts/create", completed).json()["outcome"] == "ignored"
    assert Event.objects.count() == 1


def test_a_cancelled_shopify_order_is_not_a_purchase(deliver, shopify):
    order = order_with_phone("customer")
    order["cancelled_at"] = "2026-11-30T19:10:00+01:00"
    assert deliver(shopify, "orders/create", order).json()["outcome"] == "ignored"
    assert not Event.objects.exists()


def test_other_topics_are_acknowledged_and_ignored(deliver, shopify):
    response = deliver(shopify, "products/update", {"id": 1})
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"


def test_woocommerce_order_created_becomes_a_purchase(deliver, woo, make_contact):
    contact = make_contact(phone=PHONE)
    response = deliver(woo, "order.created", WOO_ORDER)  # billing phone "0176 12345678", DE
    assert response.json()["outcome"] == "stored"
    event = Event.objects.get()
    assert (event.contact, event.kind, event.amount, event.currency, event.product) == (
        contact, "purchase", Decimal("29.35"), "EUR", "Trinkflasche")
    assert event.occurred_at.isoformat() == "2026-11-30T15:28:02+00:00"
    assert event.source_id == "woo:order:727"
    assert deliver(woo, "order.created", WOO_ORDER).json()["outcome"] == "duplicate"


def test_woocommerce_shipping_phone_is_used_when_billing_has_none(deliver, woo, make_contact):
    contact = make_contact(phone=PHONE)
    order = copy_of(WOO_ORDER)
    order["billing"]["phone"] = ""
    order["shipping"]["phone"] = "+49 176 12345678"
    deliver(woo, "order.created", order)
    assert Event.objects.get().contact == contact


def test_woocommerce_failed_orders_are_not_purchases(deliver, woo):
    assert deliver(woo, "order.created", copy_of(WOO_ORDER, status="failed")).json()[
        "outcome"] == "ignored"
    assert not Event.objects.exists()


def test_woocommerce_ping_on_creation_is_answered(client, woo):
    # WooCommerce keeps a new webhook only when this unsigned ping gets a 200.
    response = client.post("/webhooks/shop/woo/", "webhook_id=12",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200 and response.json()["outcome"] == "ping"
    assert not Event.objects.exists()


def test_woocommerce_signature_is_checked(deliver, woo):
    assert deliver(woo, "order.created", WOO_ORDER, sign="bm9wZQ==").status_code == 401
    assert not Event.objects.exists()


def test_unknown_or_inactive_connection_and_wrong_method(client, deliver, shopify):
    assert client.post("/webhooks/shop/nope/", b"{}", content_type="application/json"
                       ).status_code == 404
    ShopConnection.objects.filter(pk=shopify.pk).update(active=False)
    assert deliver(shopify, "orders/create", SHOPIFY_ORDER).status_code == 404
    assert client.get("/webhooks/shop/onlineshop/").status_code == 405


def test_a_signed_body_that_is_not_json_is_a_400(deliver, shopify):
    assert deliver(shopify, "orders/create", b"\xff\xfe not json").status_code == 400


def test_nul_bytes_and_lone_surrogates_in_a_signed_order_are_cleaned(deliver, shopify):
    order = order_with_phone("customer")
    order["line_items"][1]["title"] = "Mascara\x00 Deluxe\ud800"
    body = body_of(order)  # json.dumps escapes both: "\u0000", "\ud800"
    assert deliver(shopify, "orders/create", body).json()["outcome"] == "stored"
    assert Event.objects.get().product == "Mascara Deluxe"
