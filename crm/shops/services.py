"""Shop webhooks in: the signature, the order or checkout read, the event recorded.

A delivery is read into one ``crm.events.EventIn`` and stored by
``crm.events.events_record`` with the source id ``<shop>:order:<id>`` (or
``checkout``), so a re-delivered webhook is stored once; rules (starter rule 3)
react through ``events_recorded`` without further wiring. The customer is found
by the first valid phone number of the customer, the order, the billing and the
shipping address; an unknown number creates the contact unless the connection
says not to. Nothing here trusts the body: every field is checked for its type
and size, so a hostile body is refused or ignored, never an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.events import EventIn, events_record
from crm.models import EventKind
from crm.phones import try_normalize_phone
from crm.privacy import ERASED, Subject
from crm.shops.models import Platform, ShopConnection

SOURCE = "shop"
MAX_AMOUNT = Decimal("999999999999.99")  # crm_event.amount: 14 digits, 2 after the point
# Topic → what it means; any other topic is acknowledged and ignored.
TOPICS = {
    Platform.SHOPIFY: {"orders/create": (EventKind.PURCHASE, "order"),
                       "checkouts/create": (EventKind.CART_ABANDONED, "checkout")},
    Platform.WOOCOMMERCE: {"order.created": (EventKind.PURCHASE, "order")},
}
SIGNATURE_HEADER = {Platform.SHOPIFY: "X-Shopify-Hmac-Sha256",
                    Platform.WOOCOMMERCE: "X-WC-Webhook-Signature"}
TOPIC_HEADER = {Platform.SHOPIFY: "X-Shopify-Topic", Platform.WOOCOMMERCE: "X-WC-Webhook-Topic"}
# WooCommerce orders that are not a purchase (paid or about to be).
WOO_NOT_BOUGHT = {"failed", "cancelled", "refunded", "trash", "checkout-draft"}


def signature_valid(connection: ShopConnection, body: bytes, header: str | None) -> bool:
    """Both platforms sign the raw body: base64 of HMAC-SHA256 with the shared secret."""
    if not connection.secret or not header:
        return False
    digest = hmac.new(connection.secret.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), header.strip())


@dataclass
class Order:
    """What a delivery says, read defensively."""

    kind: str
    key: str  # "order" or "checkout"
    external_id: str
    occurred_at: datetime | None
    amount: Decimal | None
    currency: str
    product: str
    products: list[dict] = field(default_factory=list)
    phones: list[tuple[str, str | None]] = field(default_factory=list)  # (raw, region)
    skip: str = ""  # why this delivery is not an event (cancelled, completed checkout)


@dataclass(frozen=True)
class Outcome:
    code: str  # stored, duplicate, ignored, no_phone, unknown_customer, invalid
    detail: str = ""


# --- Reading a body -----------------------------------------------------------------------

def _text(value, limit: int = 200) -> str:
    """A short clean string: no NUL and no lone surrogate (PostgreSQL refuses both)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = str(value).encode("utf-8", "ignore").decode("utf-8").replace("\x00", "")
    return text.strip()[:limit]


def _dict(value) -> Mapping:
    return value if isinstance(value, dict) else {}


def _decimal(value) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number) > MAX_AMOUNT:
        return None
    return number.quantize(Decimal("0.01"))


def _when(value, *, naive_is_utc: bool = False) -> datetime | None:
    text = _text(value, 40)
    try:
        when = parse_datetime(text) if text else None
    except ValueError:
        return None
    if when is None:
        return None
    if timezone.is_naive(when):
        when = timezone.make_aware(when, UTC if naive_is_utc else None)
    if when > timezone.now() + timedelta(days=1) or when.year < 2000:
        return None
    return when


def _currency(value) -> str:
    text = _text(value, 3).upper()
    return text if re.fullmatch(r"[A-Z]{3}", text) else ""


def _products(items, title_key: str, total) -> tuple[str, list[dict]]:
    """(the main product: the line with the largest total, all lines) of an order."""
    lines = []
    for item in items[:100] if isinstance(items, list) else []:
        item = _dict(item)
        title = _text(item.get(title_key)) or _text(item.get("name")) or _text(item.get("title"))
        if not title:
            continue
        quantity = _decimal(item.get("quantity")) or Decimal(1)
        lines.append({"title": title, "quantity": str(quantity.normalize()),
                      "total": str(total(item, quantity) or ""), "sku": _text(item.get("sku"), 64),
                      "product_id": _text(item.get("product_id"), 40)})
    if not lines:
        return "", []
    main = max(lines, key=lambda line: _decimal(line["total"]) or Decimal(0))
    return main["title"], lines


def _shopify_line_total(item: Mapping, quantity: Decimal) -> Decimal | None:
    price = _decimal(item.get("price"))
    return None if price is None else _decimal(price * quantity)


def _woo_line_total(item: Mapping, quantity: Decimal) -> Decimal | None:
    return _decimal(item.get("total"))


def shopify_read(data: Mapping, kind: str, key: str) -> Order:
    product, products = _products(data.get("line_items"), "title", _shopify_line_total)
    customer = _dict(data.get("customer"))
    billing, shipping = _dict(data.get("billing_address")), _dict(data.get("shipping_address"))
    default = _dict(customer.get("default_address"))
    phones = [(customer.get("phone"), _text(default.get("country_code"), 2)),
              (data.get("phone"), _text(billing.get("country_code"), 2)),
              (billing.get("phone"), _text(billing.get("country_code"), 2)),
              (shipping.get("phone"), _text(shipping.get("country_code"), 2))]
    skip = ""
    if key == "order" and data.get("cancelled_at"):
        skip = "cancelled order"
    if key == "checkout" and data.get("completed_at"):
        skip = "checkout completed (an order follows)"
    return Order(kind=kind, key=key, external_id=_text(data.get("id"), 64),
                 occurred_at=_when(data.get("created_at")), amount=_decimal(
                     data.get("total_price")), currency=_currency(data.get("currency")),
                 product=product, products=products, skip=skip,
                 phones=[(_text(p, 40), r or None) for p, r in phones if _text(p, 40)])


def woocommerce_read(data: Mapping, kind: str, key: str) -> Order:
    product, products = _products(data.get("line_items"), "name", _woo_line_total)
    billing, shipping = _dict(data.get("billing")), _dict(data.get("shipping"))
    phones = [(billing.get("phone"), _text(billing.get("country"), 2)),
              (shipping.get("phone"), _text(shipping.get("country"), 2)
               or _text(billing.get("country"), 2))]
    status = _text(data.get("status"), 30)
    return Order(kind=kind, key=key, external_id=_text(data.get("id"), 64),
                 occurred_at=_when(data.get("date_created_gmt"), naive_is_utc=True)
                 or _when(data.get("date_created")),
                 amount=_decimal(data.get("total")), currency=_currency(data.get("currency")),
                 product=product, products=products,
                 skip=f"order status “{status}”" if status in WOO_NOT_BOUGHT else "",
                 phones=[(_text(p, 40), r or None) for p, r in phones if _text(p, 40)])


READERS = {Platform.SHOPIFY: shopify_read, Platform.WOOCOMMERCE: woocommerce_read}


# --- Recording ----------------------------------------------------------------------------

def _phone(order: Order) -> str | None:
    for raw, region in order.phones:
        if re.search(r"[^\W\d_]", raw):
            continue  # "555-555-SHIP": letters are a placeholder, not a vanity number
        phone = try_normalize_phone(raw, region)
        if phone:
            return phone
    return None


def delivery_apply(*, connection: ShopConnection, topic: str, data) -> Outcome:
    """Turn one verified delivery into an event (once per order or checkout id)."""
    meaning = TOPICS.get(connection.platform, {}).get(topic)
    if meaning is None:
        return _done(connection, Outcome("ignored", f"topic “{topic[:60]}” is not used"))
    if not isinstance(data, dict):
        return _done(connection, Outcome("invalid", "the body is not a JSON object"))
    order = READERS[connection.platform](data, *meaning)
    if not order.external_id:
        return _done(connection, Outcome("invalid", f"the {order.key} has no id"))
    if order.skip:
        return _done(connection, Outcome("ignored", order.skip))
    phone = _phone(order)
    if phone is None:
        return _done(connection, Outcome("no_phone", (
            f"{order.key} {order.external_id}: no valid phone number in customer, billing or "
            "shipping address")))
    result = events_record(events=[EventIn(
        kind=order.kind, phone=phone, phone_normalized=True, occurred_at=order.occurred_at,
        amount=order.amount, currency=order.currency, product=order.product,
        payload={"platform": connection.platform, "shop": connection.slug,
                 order.key: order.external_id, "products": order.products},
        source_id=f"{connection.slug}:{order.key}:{order.external_id}")],
        source=SOURCE, create_contacts=connection.create_contacts)
    if result.stored:
        return _done(connection, Outcome("stored", f"{order.key} {order.external_id}"))
    if result.duplicates:
        return _done(connection, Outcome("duplicate", f"{order.key} {order.external_id}"))
    return _done(connection, Outcome("unknown_customer", (
        f"{order.key} {order.external_id}: {phone} is not a contact and this connection does "
        "not create contacts")))


def _done(connection: ShopConnection, outcome: Outcome) -> Outcome:
    text = f"{outcome.code}: {outcome.detail}" if outcome.detail else outcome.code
    ShopConnection.objects.filter(pk=connection.pk).update(last_delivery_at=timezone.now(),
                                                           last_outcome=text[:300])
    return outcome


def shop_outcomes_erase(*, subject: Subject) -> int:
    """A connection's last outcome may name an unknown customer's number: blank it."""
    ids = [c.pk for c in ShopConnection.objects.only("pk", "last_outcome")
           if subject.matches(c.last_outcome)]
    return ShopConnection.objects.filter(pk__in=ids).update(last_outcome=ERASED) if ids else 0
