from __future__ import annotations

import pytest

from crm.shops.models import Platform, ShopConnection
from tests.shops.payloads import body_of, signature

SECRET = "shpss_4f1d0c2e9b7a"


@pytest.fixture
def shopify(db):
    return ShopConnection.objects.create(name="Onlineshop", slug="onlineshop",
                                         platform=Platform.SHOPIFY, secret=SECRET)


@pytest.fixture
def woo(db):
    return ShopConnection.objects.create(name="Woo", slug="woo",
                                         platform=Platform.WOOCOMMERCE, secret=SECRET)


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """``deliver(connection, topic, data_or_bytes, sign=True)``: POST like the shop does."""

    def _deliver(connection, topic: str, data, *, sign: bool | str = True, **headers):
        body = data if isinstance(data, bytes) else body_of(data)
        shopify = connection.platform == Platform.SHOPIFY
        if sign is True:
            sign = signature(body, SECRET)
        if sign:
            headers["HTTP_X_SHOPIFY_HMAC_SHA256" if shopify else
                    "HTTP_X_WC_WEBHOOK_SIGNATURE"] = sign
        headers["HTTP_X_SHOPIFY_TOPIC" if shopify else "HTTP_X_WC_WEBHOOK_TOPIC"] = topic
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/webhooks/shop/{connection.slug}/", body,
                               content_type="application/json", **headers)

    return _deliver
