"""A fake Chatwoot built from its public API documentation
(https://developers.chatwoot.com/api-reference), as an httpx transport.

It knows contacts with their labels, answers the calls label sync makes (search,
read and replace a contact's labels, ``api_access_token`` checked), can fail the next
requests with a given status (``fail_next``), and writes the webhooks Chatwoot would
send when an agent changes a conversation's labels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import httpx

TOKEN = "fake-chatwoot-token"
ACCOUNT = 7


@dataclass
class FakeContact:
    id: int
    name: str
    phone_number: str
    labels: list[str] = field(default_factory=list)

    def data(self) -> dict:
        return {"id": self.id, "name": self.name, "phone_number": self.phone_number,
                "email": None, "identifier": None, "additional_attributes": {},
                "custom_attributes": {}, "thumbnail": "", "blocked": False}


class FakeChatwoot:
    def __init__(self):
        self.contacts: dict[int, FakeContact] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail_next: list[int | str] = []  # statuses, or "timeout"
        self.label_writes = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add_contact(self, phone: str, name: str = "Customer", labels=()) -> FakeContact:
        contact = FakeContact(len(self.contacts) + 101, name, phone, list(labels))
        self.contacts[contact.id] = contact
        return contact

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if self.fail_next:
            failure = self.fail_next.pop(0)
            if failure == "timeout":
                raise httpx.ReadTimeout("no answer in time", request=request)
            return httpx.Response(failure, text="upstream trouble")
        if request.headers.get("api_access_token") != TOKEN:
            return httpx.Response(401, json={"error": "You need to sign in or sign up before "
                                                      "continuing."})
        prefix = f"/api/v1/accounts/{ACCOUNT}"
        path = request.url.path
        if not path.startswith(prefix):
            return httpx.Response(404, json={"error": "Resource could not be found"})
        path = path[len(prefix):]
        if path == "/contacts/search" and request.method == "GET":
            q = request.url.params.get("q", "")
            found = [c.data() for c in self.contacts.values() if q and q in c.phone_number]
            return httpx.Response(200, json={"meta": {"count": len(found), "current_page": 1},
                                             "payload": found})
        match = re.fullmatch(r"/contacts/(\d+)/labels", path)
        if match:
            contact = self.contacts.get(int(match[1]))
            if contact is None:
                return httpx.Response(404, json={"error": "Resource could not be found"})
            if request.method == "POST":
                body = json.loads(request.content)
                # Chatwoot overwrites the contact's labels with the list given.
                contact.labels = list(dict.fromkeys(str(x) for x in body.get("labels", [])))
                self.label_writes += 1
            return httpx.Response(200, json={"payload": contact.labels})
        return httpx.Response(404, json={"error": "Resource could not be found"})

    def conversation_labels_changed(self, contact: FakeContact, *, before: list[str],
                                    after: list[str], agent_email: str | None) -> dict:
        """The ``conversation_updated`` webhook of an agent changing a conversation's labels."""
        assignee = ({"id": 3, "name": "Agent", "email": agent_email, "type": "user"}
                    if agent_email else None)
        return {
            "event": "conversation_updated", "id": 55, "account_id": ACCOUNT, "inbox_id": 1,
            "status": "open", "labels": after, "messages": [], "can_reply": True,
            "meta": {"sender": {**contact.data(), "type": "contact"}, "assignee": assignee,
                     "team": None, "hmac_verified": False},
            "changed_attributes": [
                {"label_list": {"previous_value": before, "current_value": after}},
                {"cached_label_list": {"previous_value": ", ".join(before),
                                       "current_value": ", ".join(after)}},
                {"updated_at": {"previous_value": "2026-12-01T10:00:00.000Z",
                                "current_value": "2026-12-01T10:01:00.000Z"}},
            ],
        }
