"""Hostile bodies at Chatwoot's webhook: every answer is a deliberate 200 or 400, never a
500 (hypothesis, ≥ 500 requests), and nothing outside the synced dimensions changes."""

from __future__ import annotations

import copy
import json
from collections import Counter

from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagging.models import TagAssignment
from tests.chatwoot.fake import FakeChatwoot, FakeContact
from tests.factories import ContactFactory, UserFactory

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats() | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
NASTY = st.sampled_from([
    "", " ", "\x00", "make-up\x00", "MAKE-UP", "make-up, sports", ",,,", "9" * 40, -1, 0,
    2**63, 1e400, None, True, [], {}, ["make-up"] * 3, ["sports", 7], [None], "paid",
    "𝓛𝓲𝓹" * 30, "+4915123000042", "0151 23000042", "DROP TABLE crm_contact;"]) | JSON
EVENTS = st.sampled_from(["conversation_updated", "conversation_created", "contact_updated",
                          "contact_created", "message_created", ""]) | st.text(max_size=20)
PATHS = [("event",), ("id",), ("labels",), ("meta",), ("meta", "sender"),
         ("meta", "sender", "id"), ("meta", "sender", "phone_number"), ("meta", "assignee"),
         ("meta", "assignee", "email"), ("changed_attributes",), ("changed_attributes", 0),
         ("changed_attributes", 0, "label_list"),
         ("changed_attributes", 0, "label_list", "current_value"),
         ("changed_attributes", 0, "label_list", "previous_value"),
         ("changed_attributes", 1, "cached_label_list", "current_value"),
         ("phone_number",)]
BASE = FakeChatwoot().conversation_labels_changed(
    FakeContact(101, "Customer", "+4915123000042"), before=["follow-up"],
    after=["make-up", "paid"], agent_email="alice@example.com")


@st.composite
def mutated(draw) -> dict:
    """Chatwoot's own payload with a few places replaced by something hostile."""
    data = copy.deepcopy(BASE)
    data["event"] = draw(EVENTS)
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=4)):
        node = data
        for key in path[:-1]:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            if isinstance(node, dict) or (isinstance(node, list) and isinstance(path[-1], int)
                                          and path[-1] < len(node)):
                node[path[-1]] = draw(NASTY)
    return data


def test_the_webhook_never_answers_500(client, connection, vocabulary, agent):
    ContactFactory(phone="+4915123000042")
    connection.sync_user = UserFactory(username="sync")
    connection.save()
    url = reverse("chatwoot:webhook", args=[connection.webhook_token])
    seen: Counter = Counter()

    @settings(max_examples=520, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(body=mutated().map(lambda d: json.dumps(d, allow_nan=True).encode())
           | JSON.map(lambda d: json.dumps(d, allow_nan=True).encode()) | st.binary(max_size=200))
    def run(body):
        response = client.post(url, data=body, content_type="application/json")
        seen[response.status_code] += 1
        assert response.status_code in (200, 400)

    run()
    print("chatwoot webhook fuzz:", dict(seen))
    assert sum(seen.values()) == 520
    assert seen[200] > 100 and seen[400] > 50
    # Only tags of the synced dimensions the agent may change were ever touched.
    touched = set(TagAssignment.objects.values_list("tag__dimension__name", flat=True))
    assert touched <= {"Interest"}


def test_hostile_signature_headers_are_refused_not_crashed(client, connection, vocabulary):
    connection.webhook_secret = "cw-secret"
    connection.save()
    url = reverse("chatwoot:webhook", args=[connection.webhook_token])
    header = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF),
                     max_size=80) | st.sampled_from(["", "0", "9" * 40, "-1", "١٢٣", "sha256="])
    seen: Counter = Counter()

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(timestamp=header, signature=header)
    def run(timestamp, signature):
        response = client.post(url, data=json.dumps(BASE), content_type="application/json",
                               HTTP_X_CHATWOOT_TIMESTAMP=timestamp,
                               HTTP_X_CHATWOOT_SIGNATURE=signature)
        seen[response.status_code] += 1
        assert response.status_code == 401

    run()
    assert seen[401] == 150
