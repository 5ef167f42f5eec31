"""Property-based fuzzing of ``/webhooks/whatsapp/``: no hostile input answers 500 or stalls.

Hypothesis generates signed and unsigned bodies — WhatsApp-shaped envelopes with
hostile fields (huge, negative and non-numeric timestamps, wrong types, missing
fields, over-long and unknown wamids, error codes that pause or abort), arbitrary
JSON, random bytes, invalid UTF-8, deep nesting and oversized bodies — and hostile
signature headers. Every response must be 200, 403 or 413; every stored body must
be applied or set aside with a sentence by the next drain; and afterwards a valid
webhook is still applied at once.
"""

from __future__ import annotations

import json
from collections import Counter

from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.intake import app_secret
from campaigns.models import Send, StatusEvent, WebhookDelivery
from campaigns.selectors import webhooks_waiting
from campaigns.services import campaign_launch
from campaigns.webhooks import webhooks_drain
from tests.campaigns.fake_cloud_api import sign, status_payload

URL = "/webhooks/whatsapp/"
EXAMPLES = 520

leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40))
anything = st.recursive(leaf, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
timestamps = st.one_of(
    st.integers(-10**40, 10**40), st.integers(0, 2**33).map(str), st.text(max_size=30),
    st.sampled_from(["999999999999999999999999999999", str(10**20), "-1", "", "1e9", " 17"]),
    anything)
codes = st.one_of(st.sampled_from([131026, 131047, 131048, 131049, 131050, 132001, 368, 0,
                                   130429, 999999]), st.integers(-10**12, 10**12), anything)


def status_items(wamid: str, send_id: int):
    errors = st.one_of(anything, st.lists(st.fixed_dictionaries({}, optional={
        "code": codes, "title": st.one_of(st.text(max_size=30), anything),
        "error_data": st.one_of(st.fixed_dictionaries({"details": anything}), anything)}),
        max_size=2))
    return st.fixed_dictionaries({}, optional={
        "id": st.one_of(st.just(wamid), st.text(max_size=200), st.just("w" * 129), anything),
        "status": st.one_of(st.sampled_from(["sent", "delivered", "read", "failed", "played",
                                             "deleted"]), anything),
        "timestamp": timestamps, "errors": errors, "recipient_id": anything,
        "biz_opaque_callback_data": st.one_of(st.just(f"tw:{send_id}"),
                                              st.just("tw:" + "9" * 40), st.text(max_size=30),
                                              anything)})


def message_items(phone: str, wamid: str):
    return st.fixed_dictionaries({}, optional={
        "from": st.one_of(st.just(phone.lstrip("+")), st.text(max_size=30), anything),
        "id": st.one_of(st.text(min_size=1, max_size=40), anything),
        "timestamp": timestamps,
        "type": st.one_of(st.sampled_from(["text", "button", "interactive", "image"]),
                          anything),
        "text": st.one_of(st.fixed_dictionaries({"body": st.one_of(
            st.sampled_from(["STOP", "Hallo", "\u0000\ud800"]), st.text(max_size=50),
            anything)}), anything),
        "context": st.one_of(st.fixed_dictionaries({"id": st.just(wamid)}), anything)})


def envelopes(send: Send):
    items = {
        "statuses": st.lists(status_items(send.wamid, send.pk), max_size=4),
        "messages": st.lists(message_items(send.phone, send.wamid), max_size=3),
        "user_preferences": st.lists(st.fixed_dictionaries({}, optional={
            "wa_id": st.one_of(st.just(send.phone.lstrip("+")), anything),
            "value": st.one_of(st.sampled_from(["stop", "resume"]), anything),
            "category": st.one_of(st.just("marketing_messages"), anything)}), max_size=2),
        "errors": st.lists(st.fixed_dictionaries({}, optional={"code": codes,
                                                               "title": anything}), max_size=2),
    }
    value = st.one_of(st.fixed_dictionaries({}, optional=items), anything,
                      st.dictionaries(st.sampled_from(list(items)), anything, max_size=3))
    change = st.one_of(st.fixed_dictionaries({"value": value, "field": st.just("messages")}),
                       anything)
    entry = st.one_of(st.fixed_dictionaries({"id": st.just("0"),
                                             "changes": st.lists(change, max_size=2)}), anything)
    return st.one_of(
        st.fixed_dictionaries({"object": st.just("whatsapp_business_account"),
                               "entry": st.lists(entry, max_size=2)}),
        st.fixed_dictionaries({"entry": anything}))


def as_json(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '{"a": ' if opener == "{" else "["
    return (inner * depth + "1" + closer * depth).encode()


def damaged(body: bytes, at: int, junk: bytes) -> bytes:
    at = at % (len(body) + 1)
    return body[:at] + junk + body[at:]


def bodies(send: Send):
    shaped = envelopes(send).map(as_json)
    return st.one_of(
        shaped, shaped, shaped,
        anything.map(as_json),
        st.binary(max_size=200),
        st.builds(nested, st.integers(1, 100_000), st.sampled_from(["[", "{"])),
        st.builds(damaged, shaped, st.integers(0, 10_000),
                  st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xfe\xff"])),
        st.just(b"x" * (settings.WHATSAPP_WEBHOOK_MAX_BYTES + 1)),
    )


signatures = st.one_of(st.just("valid"), st.just("valid"), st.just("valid"), st.none(),
                       st.just("sha256=" + "0" * 64), st.text(max_size=80),
                       st.just("sha256=\u00e4\u20ac"))


def test_no_hostile_webhook_answers_500_or_stalls_processing(client, sent, contacts,
                                                             make_campaign):
    contacts(1)
    other_campaign = make_campaign()  # its one recipient: the new contact
    campaign_launch(campaign=other_campaign)
    statuses = []

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(body=bodies(sent), signature=signatures)
    def post(body: bytes, signature: str | None) -> None:
        headers = {}
        if signature == "valid":
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body, app_secret())
        elif signature is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        response = client.post(URL, body, content_type="application/json", **headers)
        statuses.append(response.status_code)
        assert response.status_code in (200, 403, 413), response.status_code
        if response.status_code == 200:  # stored: the next drain applies or sets it aside
            webhooks_drain()
            assert not webhooks_waiting().exists()

    post()

    assert len(statuses) >= 500 and 500 not in statuses
    assert statuses.count(200) >= 200  # most generated bodies were signed and stored
    set_aside = WebhookDelivery.objects.exclude(error="")
    assert set_aside.exists()
    for delivery in set_aside:
        assert delivery.processed_at is not None
        assert delivery.error.rstrip().endswith(".") and "Traceback" not in delivery.error
    # Afterwards, a valid webhook is applied at once: nothing is stalled.
    send = Send.objects.filter(campaign=other_campaign).first()
    Send.objects.filter(pk=send.pk).update(wamid="wamid.after-the-fuzz")
    body = as_json(status_payload("wamid.after-the-fuzz", "delivered", send.phone))
    assert client.post(URL, body, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE_256=sign(body, app_secret())).status_code == 200
    webhooks_drain()
    assert StatusEvent.objects.filter(wamid="wamid.after-the-fuzz", status="delivered").exists()
    assert not webhooks_waiting().exists()
    print(f"\n{len(statuses)} generated requests: responses {dict(Counter(statuses))}; "
          f"{WebhookDelivery.objects.count()} bodies stored, {set_aside.count()} set aside, "
          "0 waiting")
