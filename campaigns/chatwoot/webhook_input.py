"""Reading a Chatwoot webhook: which contact, which labels changed, and by whom.

Chatwoot posts ``{"event": "...", ...}`` (https://www.chatwoot.com/hc/user-guide/articles/
1677693021-how-to-use-webhooks). Two shapes carry labels:

* ``contact_created`` / ``contact_updated``: the contact itself (``id``, ``phone_number``);
  when it carries ``labels``, they are the contact's labels as a whole.
* ``conversation_created`` / ``conversation_updated``: the conversation, its contact in
  ``meta.sender`` and its agent in ``meta.assignee``; a label change shows in
  ``changed_attributes`` as ``{"label_list": {"previous_value": [...], "current_value":
  [...]}}`` (or ``cached_label_list`` as ``"a, b"``); a new conversation: all its
  ``labels`` are new.

Anything else is ignored. A body of the wrong shape raises ``WebhookRejected`` (answered 400).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONTACT_EVENTS = {"contact_created", "contact_updated"}
CONVERSATION_EVENTS = {"conversation_created", "conversation_updated"}

Label = Annotated[str, Field(max_length=255)]
Labels = Annotated[list[Label], Field(max_length=1000)]


class WebhookRejected(ValueError):
    """The body is not a Chatwoot webhook Tagwerk can read; ``str()`` says why."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Contact(_Loose):
    id: int = Field(ge=1, lt=2**63)
    phone_number: str | None = Field(None, max_length=64)
    labels: Labels | None = None


class _Agent(_Loose):
    email: str | None = Field(None, max_length=254)


class _Meta(_Loose):
    sender: _Contact
    assignee: _Agent | None = None


LabelText = Annotated[str, Field(max_length=100_000)]  # "vip, lead" (cached_label_list)


class _LabelChange(_Loose):
    previous_value: Labels | LabelText | None = None
    current_value: Labels | LabelText | None = None


def _label_set(value: list[str] | str | None) -> set[str]:
    if isinstance(value, str):
        value = value.split(",")
    return {label.strip() for label in value or () if label.strip()}


class _Conversation(_Loose):
    meta: _Meta
    labels: Labels | None = None
    changed_attributes: Annotated[list[dict[str, Any]], Field(max_length=100)] | None = None


@dataclass(frozen=True)
class LabelChange:
    chatwoot_id: int
    phone: str
    agent_email: str
    labels: frozenset[str] | None = None   # the whole set (contact events)
    added: frozenset[str] = frozenset()    # a change (conversation events)
    removed: frozenset[str] = frozenset()


def webhook_read(data: Any) -> LabelChange | None:
    """The label change ``data`` reports, ``None`` when it reports none."""
    if not isinstance(data, dict):
        raise WebhookRejected("the body is not a JSON object")
    event = data.get("event")
    if not isinstance(event, str):
        raise WebhookRejected("the body names no event")
    try:
        if event in CONTACT_EVENTS:
            return _contact_change(_Contact.model_validate(data))
        if event in CONVERSATION_EVENTS:
            return _conversation_change(event, _Conversation.model_validate(data))
    except ValidationError as exc:
        raise WebhookRejected(f"{event}: {exc.error_count()} fields of the wrong shape") from None
    return None


def _contact_change(contact: _Contact) -> LabelChange | None:
    if contact.labels is None:
        return None
    return LabelChange(contact.id, contact.phone_number or "", "",
                       labels=frozenset(contact.labels))


def _conversation_change(event: str, conversation: _Conversation) -> LabelChange | None:
    sender, assignee = conversation.meta.sender, conversation.meta.assignee
    agent = (assignee.email or "") if assignee else ""
    before: set[str] = set()
    after: set[str] | None = None
    for changed in conversation.changed_attributes or ():
        key = next((k for k in ("label_list", "cached_label_list") if k in changed), None)
        if key is None or (after is not None and key == "cached_label_list"):
            continue
        try:
            change = _LabelChange.model_validate(changed[key])
        except ValidationError:
            raise WebhookRejected(f"{key} of the wrong shape") from None
        before, after = _label_set(change.previous_value), _label_set(change.current_value)
    if after is None and event == "conversation_created" and conversation.labels:
        after = set(conversation.labels)
    if after is None or after == before:
        return None
    return LabelChange(sender.id, sender.phone_number or "", agent,
                       added=frozenset(after - before), removed=frozenset(before - after))
