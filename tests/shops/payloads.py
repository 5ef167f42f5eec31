"""Shop webhook bodies written after the platforms' documented formats (trimmed).

Shopify: the REST ``Order`` and ``Checkout`` resources as sent by the ``orders/create`` and
``checkouts/create`` topics (prices are strings; ``customer``, ``billing_address`` and
``shipping_address`` each may carry a ``phone``; the header ``X-Shopify-Hmac-Sha256`` is
the base64 HMAC-SHA256 of the raw body). WooCommerce: the REST v3 order as sent by
``order.created`` (``billing.phone``, ``shipping.phone`` since 5.6; ``date_created_gmt``
without offset; ``X-WC-Webhook-Signature`` is base64 HMAC-SHA256 too).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json

SHOPIFY_ORDER = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "name": "#1001",
    "email": "jon@example.com",
    "phone": None,
    "created_at": "2026-11-30T19:00:00+01:00",
    "currency": "EUR",
    "total_price": "403.00",
    "subtotal_price": "398.00",
    "cancelled_at": None,
    "financial_status": "paid",
    "test": False,
    "line_items": [
        {"id": 866550311766439020, "title": "Lippenstift Rosé", "name": "Lippenstift Rosé",
         "price": "19.00", "quantity": 2, "sku": "LIP-ROSE", "product_id": 632910392,
         "variant_id": 808950810},
        {"id": 141249953214522974, "title": "Mascara Deluxe", "name": "Mascara Deluxe",
         "price": "360.00", "quantity": 1, "sku": "MASC-DLX", "product_id": 632910393,
         "variant_id": 808950811},
    ],
    "customer": {"id": 115310627314723954, "email": "john@example.com", "first_name": "John",
                 "last_name": "Smith", "phone": None,
                 "default_address": {"country_code": "DE", "phone": None}},
    "billing_address": {"first_name": "Steve", "last_name": "Shipper", "phone": "555-555-SHIP",
                        "city": "Berlin", "zip": "10115", "country": "Germany",
                        "country_code": "DE"},
    "shipping_address": {"first_name": "Steve", "last_name": "Shipper", "phone": None,
                         "city": "Berlin", "zip": "10115", "country": "Germany",
                         "country_code": "DE"},
}

SHOPIFY_CHECKOUT = {
    "id": 981820079255243537,
    "token": "123123123",
    "cart_token": "eeafa272cebfd4b22385bc4b645e762c",
    "email": "example@email.com",
    "phone": None,
    "created_at": "2026-11-30T18:40:00+01:00",
    "completed_at": None,
    "currency": "EUR",
    "total_price": "19.00",
    "abandoned_checkout_url": "https://checkout.local/548380009/checkouts/123123123/recover",
    "line_items": [{"title": "Lippenstift Rosé", "price": "19.00", "quantity": 1,
                    "product_id": 632910392, "variant_id": 808950810, "sku": "LIP-ROSE"}],
    "customer": {"id": 207119551, "phone": "+4917612345678"},
    "billing_address": {"phone": None, "country_code": "DE"},
    "shipping_address": {"phone": None, "country_code": "DE"},
}

WOO_ORDER = {
    "id": 727,
    "parent_id": 0,
    "number": "727",
    "order_key": "wc_order_58d2d042d1d",
    "created_via": "checkout",
    "status": "processing",
    "currency": "EUR",
    "date_created": "2026-11-30T16:28:02",
    "date_created_gmt": "2026-11-30T15:28:02",
    "total": "29.35",
    "customer_id": 0,
    "billing": {"first_name": "John", "last_name": "Doe", "address_1": "969 Market",
                "city": "München", "postcode": "80331", "country": "DE",
                "email": "john.doe@example.com", "phone": "0176 12345678"},
    "shipping": {"first_name": "John", "last_name": "Doe", "city": "München",
                 "postcode": "80331", "country": "DE", "phone": ""},
    "line_items": [
        {"id": 315, "name": "Yoga-Matte", "product_id": 93, "variation_id": 0, "quantity": 2,
         "subtotal": "6.00", "total": "6.00", "sku": "", "price": 3},
        {"id": 316, "name": "Trinkflasche", "product_id": 22, "variation_id": 23,
         "quantity": 1, "subtotal": "23.35", "total": "23.35", "sku": "", "price": 23.35},
    ],
}


def body_of(data) -> bytes:
    return json.dumps(data).encode()


def signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def copy_of(data: dict, **changes) -> dict:
    result = copy.deepcopy(data)
    result.update(changes)
    return result
