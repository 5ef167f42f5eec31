import json
from decimal import Decimal

import pytest
from django.utils import timezone

from crm.api.events import MAX_EVENTS
from crm.models import ApiScope, ApiToken, Contact, Event
from crm.tokens import api_token_create, api_token_issue, api_tokens_revoke

pytestmark = pytest.mark.django_db
URL = "/api/events/"


@pytest.fixture
def token():
    return api_token_create(name="Shop")[1]


def post(client, body, token=None, raw=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **headers)


def test_a_batch_is_stored_with_facts_and_unknown_numbers_become_contacts(client, token,
                                                                         make_contact):
    known = make_contact()
    response = post(client, [
        {"type": "purchase", "phone": known.phone, "amount": "19.90", "currency": "eur",
         "product": "Lippenstift Rot", "category": "Lippenstift", "source_id": "o-1",
         "occurred_at": "2025-03-01T10:00:00+01:00"},
        {"type": "newsletter_signup", "phone": "+49 170 1234567", "payload": {"list": "a"}},
    ], token)

    assert response.status_code == 201
    body = response.json()
    assert (body["stored"], body["contacts_created"], len(body["ids"])) == (2, 1, 2)
    known.refresh_from_db()
    assert (known.purchase_count, known.total_spent) == (1, Decimal("19.90"))
    custom = Event.objects.get(contact__phone="+491701234567")
    assert (custom.kind, custom.name, custom.payload) == ("custom", "newsletter_signup",
                                                          {"list": "a"})


def test_one_event_as_an_object_and_a_replay_is_harmless(client, token):
    event = {"type": "interaction", "phone": "+491701234567", "source_id": "chat-9"}
    first = post(client, event, token)
    again = post(client, {"events": [event]}, token)
    assert first.status_code == 201
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert Event.objects.count() == 1


def test_without_a_token_the_answer_is_401_with_a_bearer_challenge(client):
    response = post(client, {"type": "interaction", "phone": "+491701234567"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthenticated"


def test_unknown_and_revoked_tokens_are_refused(client, token):
    assert post(client, {}, "tw_not-a-real-token").status_code == 401
    api_tokens_revoke(tokens=ApiToken.objects.all())
    response = post(client, {"type": "interaction", "phone": "+491701234567"}, token)
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert not Contact.objects.exists()


def test_a_token_without_the_scope_gets_403(client):
    raw = api_token_issue(token=ApiToken(name="No scopes", scopes=[]))
    response = post(client, {"type": "interaction", "phone": "+491701234567"}, raw)
    assert response.status_code == 403
    assert ApiScope.EVENTS_WRITE in response.json()["message"]


def test_invalid_items_are_named_by_index_and_nothing_is_stored(client, token):
    response = post(client, [
        {"type": "interaction", "phone": "+491701234567"},
        {"type": "purchase", "phone": "12"},
        {"type": "purchase", "phone": "+491701234567", "amount": "lots"},
        {"phone": "+491701234567"},
        "not an object",
    ], token)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "phone"), (2, "amount"), (3, "type"), (4, "")]
    assert "event 1" in response.json()["message"]
    assert not Event.objects.exists() and not Contact.objects.exists()


def test_bad_json_is_400_and_a_too_large_batch_is_413(client, token):
    assert post(client, None, token, raw="{nope").json()["error"] == "invalid_json"
    too_many = [{"type": "interaction", "phone": "+491701234567"}] * (MAX_EVENTS + 1)
    response = post(client, too_many, token)
    assert response.status_code == 413
    assert response.json()["errors"][0]["index"] == MAX_EVENTS


def test_only_post_is_allowed_and_csrf_is_not_needed(token):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 405
    assert post(client, {"type": "interaction", "phone": "+491701234567"},
                token).status_code == 201


def test_use_is_recorded_on_the_token(client, token):
    post(client, {"type": "interaction", "phone": "+491701234567"}, token)
    used = ApiToken.objects.get().last_used_at
    assert used is not None and (timezone.now() - used).total_seconds() < 60


def test_future_dates_are_refused(client, token):
    response = post(client, {"type": "interaction", "phone": "+491701234567",
                             "occurred_at": "2999-01-01T00:00:00Z"}, token)
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "future_date"


def test_admin_shows_a_new_token_once_and_revokes_it(client, superuser):
    client.force_login(superuser)
    response = client.post("/admin/crm/apitoken/add/",
                           {"name": "Shopify", "scopes": ["events:write"]}, follow=True)
    raw = next(m.message for m in response.context["messages"]).split(": ")[-1]
    token = ApiToken.objects.get()
    assert raw.startswith("tw_") and token.prefix == raw[:10] and raw not in token.token_hash
    assert post(client, {"type": "interaction", "phone": "+491701234567"}, raw).status_code \
        == 201
    client.post("/admin/crm/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert post(client, {"type": "interaction", "phone": "+491701234567"}, raw).status_code \
        == 401


def test_a_body_over_the_upload_limit_is_413(client, token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    big = [{"type": "interaction", "phone": "+491701234567", "name": "x" * 50}] * 30
    response = post(client, big, token)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


# --- #14: hostile input gets a 4xx naming the item and field, and nothing is stored -------

def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = {
    "impossible date": ({"occurred_at": "2025-02-30"}, "occurred_at", "bad_date"),
    "impossible date-time": ({"occurred_at": "2025-02-30T10:00:00"}, "occurred_at", "bad_date"),
    "year zero": ({"occurred_at": "0000-01-01"}, "occurred_at", "bad_date"),
    "before year one in UTC": ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at",
                               "bad_date"),
    "offset beyond a day": ({"occurred_at": "2025-01-01T00:00:00+99:00"}, "occurred_at",
                            "bad_date"),
    "NUL in a text": ({"product": "Lippen\u0000stift"}, "product", "bad_text"),
    "NUL in the type": ({"type": "sign\u0000up"}, "type", "bad_text"),
    "NUL in a payload key": ({"payload": {"li\u0000st": "a"}}, "payload", "bad_text"),
    "NUL in a payload value": ({"payload": {"list": ["a", "b\u0000"]}}, "payload.list[1]",
                               "bad_text"),
    "lone surrogate in a text": ({"product": "\ud800"}, "product", "bad_text"),
    "lone surrogate in a payload key": ({"payload": {"\udfff": 1}}, "payload", "bad_text"),
    "infinite number in the payload": ({"payload": {"n": 1e999}}, "payload.n", "bad_number"),
    "payload nested too deeply": ({"payload": {"a": _nested(40)}}, "payload.a[0]…", "too_deep"),
    "a boolean for a text": ({"product": True}, "product", "bad_value"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_values_are_refused_by_item_and_field(client, token, case):
    extra, field, reason = HOSTILE[case]
    good = {"type": "interaction", "phone": "+491701234567"}
    raw = json.dumps([good, {**good, **extra}]).replace("Infinity", "1e999")  # beyond float
    response = post(client, None, token, raw=raw)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_events"
    (error,) = body["errors"]
    assert (error["index"], error["reason"]) == (1, reason)
    assert error["field"] == field or (
        field.endswith("…") and error["field"].startswith(field[:-1]))
    assert "event 1" in body["message"]
    assert not Event.objects.exists() and not Contact.objects.exists()


def test_json_nested_beyond_the_parser_is_400_not_500(client, token):
    deep = '{"type": "interaction", "phone": "+491701234567", "payload": {"a": ' \
        + "[" * 100_000 + "]" * 100_000 + "}}"
    response = post(client, None, token, raw=deep)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
    assert "deep" in response.json()["message"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(client, token, constant):
    raw = '{"type": "purchase", "phone": "+491701234567", "amount": ' + constant + "}"
    response = post(client, None, token, raw=raw)
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    assert constant.lstrip("-") in response.json()["message"]


def test_events_that_is_not_a_list_is_named(client, token):
    response = post(client, {"events": {"type": "interaction"}}, token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"
    assert "events" in response.json()["message"]
