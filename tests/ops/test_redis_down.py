"""With Redis down (#14), the audience count and the contact list with an expression still
answer — from SQL — instead of a 500. Seen on main: the contact list with an expression and
the campaign page answered 500."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from crm.models import ApiScope
from crm.tokens import api_token_create
from tagging.services import tags_change

pytestmark = pytest.mark.django_db

CLOSED = "redis://127.0.0.1:1/0"  # nothing listens on port 1
DOWN = override_settings(
    REDIS_URL=CLOSED,
    CACHES={"default": {"BACKEND": "config.cache.ForgivingRedisCache", "LOCATION": CLOSED,
                        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}})
EXPR = '"VIP" AND purchases >= 1'


@pytest.fixture
def world(make_contact, make_tag):
    vip = make_tag(name="VIP")
    buyers = [make_contact(purchase_count=2) for _ in range(3)]
    make_contact(purchase_count=0)
    tags_change(contacts=buyers[:2], add=[vip])
    return buyers


@DOWN
def test_the_audience_count_answers_from_sql(client, superuser, world):
    client.force_login(superuser)
    answer = client.get(reverse("admin:crm_contact_audience_count"), {"expr": EXPR})
    assert answer.status_code == 200 and answer.json() == {"count": 2}


@DOWN
def test_the_contact_list_with_an_expression_answers(client, superuser, world):
    client.force_login(superuser)
    page = client.get(reverse("admin:crm_contact_changelist"), {"expr": EXPR})
    assert page.status_code == 200
    assert {c.pk for c in page.context["cl"].result_list} == {c.pk for c in world[:2]}


@DOWN
def test_the_api_contact_list_with_where_answers(client, world):
    token = api_token_create(name="Shop", scopes=list(ApiScope.values), dimensions=[],
                             all_dimensions=True, rate_limit=1000)[1]
    answer = client.get("/api/v1/contacts/", {"where": EXPR},
                        HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200
    assert {c["phone"] for c in answer.json()["items"]} == {c.phone for c in world[:2]}


@DOWN
@override_settings(TAGWERK_API_BURST=3)
def test_api_rate_limits_still_hold_per_process_while_redis_is_down(client, world):
    token = api_token_create(name="Shop", scopes=list(ApiScope.values), dimensions=[],
                             all_dimensions=True, rate_limit=1)[1]
    answers = [client.get("/api/v1/contacts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code
               for _ in range(6)]
    assert answers[:3] == [200, 200, 200] and 429 in answers[3:]
