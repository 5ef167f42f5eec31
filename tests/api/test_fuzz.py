"""Property-based fuzzing of the events API (#14): hostile input never gets a 500.

Hypothesis generates event bodies of every shape — valid events, events with impossible
dates, NUL characters, lone surrogates, numbers beyond float, payloads nested hundreds
of levels deep, wrong types in every field, bodies that are not JSON or not UTF-8 — and
each is sent to ``/api/v1/events/`` or, every other one, to the original ``/api/events/``.
Every answer must be a success or a 4xx in the endpoint's error format; no input may crash
the API or store half a batch. The examples are derandomized (the same 500 on every run, so CI is
stable); ``TAGWERK_FUZZ_RANDOM=1`` explores new ones and ``TAGWERK_FUZZ_EXAMPLES`` sets
how many.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Event

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("TAGWERK_FUZZ_EXAMPLES", "500"))
RANDOM = os.environ.get("TAGWERK_FUZZ_RANDOM") == "1"

NASTY = ["\x00", "\ud800", "\udfff", "\udbff\udc00", "\u202e", "\ufeff", "\u0085", "\n", "'",
         '"', "\\", "%s", "💥", "ß", "电话", "\x7f", "\x1b[31m"]
characters = st.one_of(st.characters(codec=None, exclude_categories=()),
                       st.sampled_from([c for c in NASTY if len(c) == 1]))
texts = st.one_of(
    st.text(characters, max_size=30),
    st.lists(st.one_of(st.text(characters, max_size=5), st.sampled_from(NASTY)), max_size=8)
    .map("".join),
    st.text(characters, min_size=190, max_size=260),
    st.sampled_from(["", " ", "2025-02-30", "2025-02-30T10:00:00", "0000-01-01",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59",
                     "2025-01-01T00:00:00+99:00", "2025-13-01", "1e999", "NaN", "-0",
                     "+49 170 1234567", "0049170123456789012345", "+1", "00", "+",
                     "purchase", "PURCHASE", "order", "custom", "2024-06-01 12:00"]),
)
numbers = st.one_of(st.integers(), st.integers(min_value=-10**60, max_value=10**60),
                    st.floats(), st.sampled_from([0, -1, 2**63, 10**12, 1e308, 5e-324]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                     st.dictionaries(texts, inner, max_size=4)),
    max_leaves=25)
phones = st.one_of(st.sampled_from(["+491701234567", "+49 170 1234567", "0170 1234567",
                                    "0049 (170) 123-45-67", "+85291234567", "+8613800138000"]),
                   texts, numbers)
dates = st.one_of(st.datetimes().map(lambda d: d.isoformat()),
                  st.dates().map(lambda d: d.isoformat()), texts, numbers)
event = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(["purchase", "interaction", "message_read",
                                       "cart_abandoned", "newsletter_signup"]), texts, json_values),
    "kind": texts, "name": texts, "phone": phones, "occurred_at": dates,
    "amount": st.one_of(numbers, texts, json_values), "currency": texts, "product": texts,
    "category": texts, "source_id": st.one_of(texts, numbers, json_values),
    "payload": json_values,
})

valid = st.fixed_dictionaries({
    "type": st.sampled_from(["purchase", "interaction", "Newsletter-Anmeldung"]),
    "phone": st.sampled_from(["+491701234567", "0170 7654321", "+85291234567"]),
}, optional={"amount": st.decimals(0, 10**6, places=2).map(str),
             "occurred_at": st.datetimes(min_value=datetime(1990, 1, 1),
                                         max_value=datetime(2024, 1, 1))
             .map(lambda d: d.isoformat()),
             "source_id": st.text("abc123", min_size=1, max_size=6),
                      "payload": st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)})
# A valid event with one field made hostile.
FIELDS = ["type", "kind", "name", "phone", "occurred_at", "amount", "currency", "product",
          "category", "source_id", "payload"]
one_bad = st.tuples(valid, st.sampled_from(FIELDS), st.one_of(texts, json_values)).map(
    lambda t: {**t[0], t[1]: t[2]})


def _dumps(value) -> str:
    # ensure_ascii keeps lone surrogates as \\udxxx escapes: valid JSON text for them.
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


bodies = st.one_of(
    valid.map(_dumps),
    st.lists(st.one_of(valid, one_bad), min_size=1, max_size=6).map(_dumps),
    event.map(_dumps),
    st.lists(event, max_size=6).map(_dumps),
    st.fixed_dictionaries({"events": st.one_of(st.lists(event, max_size=6), json_values)})
    .map(_dumps),
    json_values.map(_dumps),
    st.integers(min_value=21, max_value=5000).map(lambda n: _dumps(
        {"type": "interaction", "phone": "+491701234567", "payload": {"a": 0}})
        .replace("0}", "[" * n + "]" * n + "}")),
    st.binary(max_size=80),
    st.text(characters, max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
    event.map(_dumps).map(lambda s: s[: len(s) // 2]),
)


@pytest.fixture
def token(make_token):
    return make_token(["events:write"], rate_limit=10**6)


def test_no_hostile_input_makes_the_events_api_fail(client, token):
    seen: Counter = Counter()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
              suppress_health_check=list(HealthCheck))
    @given(body=bodies)
    def send(body):
        data = body if isinstance(body, bytes) else body.encode()
        stored_before = Event.objects.count()
        # Both addresses run the same code; each input goes to one of them, in turn.
        for url in [("/api/v1/events/", "/api/events/")[seen["inputs"] % 2]]:
            response = client.post(url, data=data, content_type="application/json", **headers)
            seen[response.status_code] += 1
            seen["requests"] += 1
            assert response.status_code < 500, (url, data[:300], response.content[:300])
            answer = response.json()
            if response.status_code >= 400:
                error = answer["error"]
                message = error["message"] if url.startswith("/api/v1") else answer["message"]
                assert message and (error["code"] if url.startswith("/api/v1") else error)
                assert Event.objects.count() == stored_before  # nothing half-applied
            else:
                assert answer["stored"] + answer["duplicates"] >= 1
        seen["inputs"] += 1

    send()
    print(f"\nfuzz: {seen['inputs']} inputs, {seen['requests']} requests, answers "
          + ", ".join(f"{k}: {v}" for k, v in sorted((k, v) for k, v in seen.items()
                                                    if isinstance(k, int))))
    assert seen["inputs"] >= min(EXAMPLES, 500) and seen[500] == 0


# --- the rest of /api/v1/: hostile bodies, paths and queries ---------------------------------

contact_fields = st.fixed_dictionaries({}, optional={
    name: st.one_of(texts, json_values) for name in (
        "phone", "first_name", "last_name", "salutation", "gender", "birth_date", "language",
        "city", "occupation", "external_label", "notes", "attributes", "consent_status",
        "consent_source", "nickname")})
requests_ = st.one_of(
    st.tuples(st.just("post"), st.just("/contacts/"), contact_fields.map(_dumps)),
    st.tuples(st.just("patch"), st.just("/contacts/+491701234567/"), contact_fields.map(_dumps)),
    st.tuples(st.just("post"), st.just("/contacts/+491701234567/tags/"),
              st.fixed_dictionaries({}, optional={"add": json_values, "remove": json_values})
              .map(_dumps)),
    st.tuples(st.just("post"), st.just("/bulk-operations/"),
              st.fixed_dictionaries({}, optional={"where": texts, "segment": json_values,
                                                  "add": json_values}).map(_dumps)),
    st.tuples(st.just("post"), st.just("/tags/"),
              st.fixed_dictionaries({}, optional={"name": texts, "dimension": texts,
                                                  "lifetime_days": json_values}).map(_dumps)),
    st.tuples(st.just("get"), texts.map(
        lambda t: "/contacts/" + quote(t.encode("utf-8", "surrogatepass"), safe="") + "/"),
              st.none()),
    st.tuples(st.just("get"), st.just("/contacts/"),
              st.fixed_dictionaries({}, optional={"where": texts, "cursor": texts,
                                                  "limit": texts})),
    st.tuples(st.sampled_from(["post", "patch"]), st.just("/contacts/+491701234567/"),
              st.binary(max_size=60)),
)


def test_no_hostile_request_makes_the_rest_of_the_api_fail(client, make_token, make_contact,
                                                          make_tag):
    make_contact(phone="+491701234567")
    make_tag(name="Sport")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {make_token(rate_limit=10**6)}"}
    seen: Counter = Counter()

    @settings(max_examples=max(EXAMPLES // 2, 50), deadline=None, derandomize=not RANDOM,
              database=None, suppress_health_check=list(HealthCheck))
    @given(request=requests_)
    def send(request):
        method, path, body = request
        url = f"/api/v1{path}"
        if method == "get":
            # As a browser would send them: UTF-8 (lone surrogates too), percent-encoded.
            query = "&".join(f"{k}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}"
                             for k, v in (body or {}).items())
            response = client.get(f"{url}?{query}", **headers)
        else:
            data = body if isinstance(body, bytes) else body.encode()
            response = getattr(client, method)(url, data=data, content_type="application/json",
                                               **headers)
        seen[response.status_code] += 1
        assert response.status_code < 500, (method, path, body, response.content[:300])
        if response.status_code >= 400:
            assert response.json()["error"]["message"]

    send()
    print(f"\nfuzz (rest of the API): {sum(seen.values())} requests, answers "
          + ", ".join(f"{k}: {v}" for k, v in sorted(seen.items())))
    assert seen[500] == 0
