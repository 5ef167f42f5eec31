"""Chatwoot's writes: tag changes from the sidebar and from labels, labels pushed to
Chatwoot, and the tables of this app (links, notes).

Loop-free by a marker: a tag change that came from a Chatwoot label carries the source
reference ``chatwoot-label:<agent>``, and ``operation_push_targets`` leaves such changes
out, so they are never sent back. A change made in the sidebar (``chatwoot:<agent>``) is
Tagwerk's own and is sent to Chatwoot like any other.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from campaigns.chatwoot.client import ChatwootClient, ChatwootError
from campaigns.chatwoot.labels import label_map, labels_of_tags
from campaigns.chatwoot.models import ChatwootConnection, ContactLink, SyncNote
from campaigns.chatwoot.webhook_input import LabelChange, webhook_read
from crm.jobs import enqueue
from crm.models import Contact
from crm.phones import country_of, try_normalize_phone
from crm.services import contacts_insert
from tagging.models import AssignmentHistory, Source, Tag, TagAssignment
from tagging.permissions import can_apply
from tagging.services import TagChangeError, TagChangeResult, tags_change

logger = logging.getLogger(__name__)

SIDEBAR_REF = "chatwoot"
LABEL_REF = "chatwoot-label"
PUSH_TASK = "campaigns.chatwoot.tasks.chatwoot_labels_push_task"
OPERATION_TASK = "campaigns.chatwoot.tasks.chatwoot_operation_push_task"
# An operation touching more unlinked contacts than this is not searched for in Chatwoot
# (one search each); its linked contacts are still pushed.
SEARCH_LIMIT = 50


def _ref(prefix: str, user) -> str:
    return f"{prefix}:{user.get_username()}"[:100]


# --- the sidebar ----------------------------------------------------------------------------


def sidebar_tags_change(*, contact: Contact, add: Sequence[Tag], remove: Sequence[Tag],
                        agent) -> TagChangeResult:
    """The agent's change in the sidebar: ``tags_change`` with the agent's rights, logged
    “by <agent> in Chatwoot”. Raises ``TagPermissionDenied`` / ``TagChangeError``."""
    return tags_change(contacts=[contact.pk], add=add, remove=remove, actor=agent,
                       source=Source.MANUAL, source_ref=_ref(SIDEBAR_REF, agent))


def sidebar_contact_create(*, phone: str, name: str = "") -> Contact:
    """Create the contact of an unknown number (E.164) seen in Chatwoot; the existing one
    when it was created meanwhile. No marketing consent: a chat is not an opt-in."""
    first, _sep, last = name.strip().partition(" ")
    contacts_insert(rows=[{"phone": phone, "country": country_of(phone),
                           "first_name": first[:100], "last_name": last[:100]}],
                    skip_existing=True)
    return Contact.objects.get(phone=phone)


# --- notes and links ------------------------------------------------------------------------


def sync_note_add(*, connection: ChatwootConnection, message: str,
                  contact: Contact | None = None, agent: str = "") -> SyncNote:
    logger.warning("chatwoot %s: %s", connection.name, message)
    return SyncNote.objects.create(connection=connection, contact=contact, agent=agent[:200],
                                   message=message)


def contact_link(*, connection: ChatwootConnection, contact: Contact, chatwoot_id: int) -> None:
    """Remember that ``contact`` is Chatwoot's ``chatwoot_id``; a changed id replaces the old."""
    ContactLink.objects.filter(connection=connection, chatwoot_id=chatwoot_id).exclude(
        contact=contact).delete()
    try:
        with transaction.atomic():
            ContactLink.objects.update_or_create(connection=connection, contact=contact,
                                                 defaults={"chatwoot_id": chatwoot_id})
    except IntegrityError:  # linked at the same moment by another request
        pass


def contact_chatwoot_export(contact: Contact) -> list[dict]:
    """What this app holds about ``contact`` (privacy export): its links and sync notes."""
    links = [{"connection": link.connection.name, "chatwoot_contact_id": link.chatwoot_id}
             for link in ContactLink.objects.filter(contact=contact).select_related("connection")]
    notes = [{"connection": note.connection.name, "at": note.at.isoformat(),
              "agent": note.agent, "message": note.message}
             for note in SyncNote.objects.filter(contact=contact).select_related("connection")]
    return links + notes


def contact_chatwoot_erase(*, contact_id: int) -> int:
    """Delete the links and sync notes of the contact (erasure); return how many rows."""
    links = ContactLink.objects.filter(contact_id=contact_id).delete()[0]
    return links + SyncNote.objects.filter(contact_id=contact_id).delete()[0]


# --- Chatwoot → Tagwerk ---------------------------------------------------------------------

SIGNATURE_HEADER = "X-Chatwoot-Signature"
TIMESTAMP_HEADER = "X-Chatwoot-Timestamp"
SIGNATURE_MAX_AGE = 300  # seconds either way: a replayed old delivery is refused


def signature_valid(*, connection: ChatwootConnection, body: bytes, timestamp: str | None,
                    signature: str | None, now: float | None = None) -> bool:
    """Whether a delivery is signed as Chatwoot signs webhooks: ``sha256=`` and the hex
    HMAC-SHA256 of ``"<timestamp>.<body>"`` with the webhook's secret, the timestamp (Unix
    seconds) within five minutes. Without a secret configured every delivery passes."""
    if not connection.webhook_secret:
        return True
    if not timestamp or not signature or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(timestamp[:12])) > SIGNATURE_MAX_AGE:
        return False
    digest = hmac.new(connection.webhook_secret.encode(), timestamp.encode() + b"." + body,
                      hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={digest}".encode(), signature.strip().encode())


@dataclass(frozen=True)
class Outcome:
    code: str     # ignored, unknown_contact, unchanged, applied, refused
    detail: str = ""


def webhook_apply(*, connection: ChatwootConnection, data) -> Outcome:
    """Apply the label change a webhook reports to the contact's tags of synced dimensions.

    Unmapped labels are ignored. The agent's rights (the conversation's assignee, found by
    e-mail; else the connection's sync user) decide; what they may not change is refused,
    noted, and Chatwoot is set back to Tagwerk's tags. Raises ``WebhookRejected``.
    """
    change = webhook_read(data)
    if change is None:
        return Outcome("ignored", "no label change")
    contact = _contact_of(connection, change)
    if contact is None:
        return Outcome("unknown_contact", "no contact with this number")
    add, remove = _diff(connection, contact, change)
    if not add and not remove:
        return Outcome("unchanged")
    agent = _agent(connection, change.agent_email)
    if agent is None:
        sync_note_add(connection=connection, contact=contact, agent=change.agent_email,
                      message=_("A label change in Chatwoot was refused: Tagwerk cannot tell "
                                "which agent made it and no sync user is set."))
        _push_later(connection, contact)
        return Outcome("refused", "no agent")
    allowed = [t for t in (*add, *remove) if can_apply(agent, t.dimension)]
    refused = sorted({t.name for t in (*add, *remove) if t not in allowed})
    if refused:
        sync_note_add(connection=connection, contact=contact, agent=agent.get_username(),
                      message=_("%(agent)s may not change these tags, so their labels were "
                                "set back in Chatwoot: %(tags)s.")
                      % {"agent": agent.get_username(), "tags": ", ".join(refused)})
    result = None
    if allowed:
        try:
            result = tags_change(contacts=[contact.pk], actor=agent, source=Source.MANUAL,
                                 add=[t for t in add if t in allowed],
                                 remove=[t for t in remove if t in allowed],
                                 source_ref=_ref(LABEL_REF, agent))
        except TagChangeError as exc:
            sync_note_add(connection=connection, contact=contact, agent=agent.get_username(),
                          message=str(exc))
            refused = refused or [str(exc)]
    if refused or (result and result.replaced):
        _push_later(connection, contact)  # Chatwoot shows what Tagwerk holds, not the refusal
    if refused:
        return Outcome("refused", ", ".join(refused))
    return Outcome("applied", f"+{len(add)} -{len(remove)}")


def _contact_of(connection: ChatwootConnection, change: LabelChange) -> Contact | None:
    link = ContactLink.objects.filter(connection=connection, chatwoot_id=change.chatwoot_id
                                      ).select_related("contact").first()
    if link:
        return link.contact
    phone = try_normalize_phone(change.phone) if change.phone else None
    contact = Contact.objects.filter(phone=phone).first() if phone else None
    if contact:
        contact_link(connection=connection, contact=contact, chatwoot_id=change.chatwoot_id)
    return contact


def _diff(connection: ChatwootConnection, contact: Contact,
          change: LabelChange) -> tuple[list[Tag], list[Tag]]:
    mapping = label_map(connection)
    held = set(TagAssignment.objects.filter(
        contact=contact, tag__in=list(mapping.values())).values_list("tag_id", flat=True))
    if change.labels is not None:
        wanted = {mapping[label].pk for label in change.labels if label in mapping}
        add_ids, remove_ids = wanted - held, held - wanted
    else:
        add_ids = {mapping[label].pk for label in change.added if label in mapping} - held
        remove_ids = {mapping[label].pk for label in change.removed if label in mapping} & held
    by_id = {t.pk: t for t in mapping.values()}
    return ([by_id[i] for i in sorted(add_ids) if not by_id[i].is_archived],
            [by_id[i] for i in sorted(remove_ids)])


def _agent(connection: ChatwootConnection, email: str):
    if email:
        agent = get_user_model().objects.filter(email__iexact=email, is_active=True).first()
        if agent:
            return agent
    return connection.sync_user if connection.sync_user_id else None


def _push_later(connection: ChatwootConnection, contact: Contact) -> None:
    enqueue(PUSH_TASK, connection.pk, contact.pk)


# --- Tagwerk → Chatwoot ---------------------------------------------------------------------


def operation_push_targets(*, operation: str) -> list[tuple[int, int]]:
    """(connection id, contact id) for each contact whose synced tags ``operation`` changed,
    leaving out changes that came from Chatwoot's labels (no echo)."""
    targets: list[tuple[int, int]] = []
    rows = AssignmentHistory.objects.filter(operation=operation).exclude(
        source_ref__startswith=f"{LABEL_REF}:")
    for connection in ChatwootConnection.objects.filter(active=True):
        dimensions = list(connection.dimensions.values_list("pk", flat=True))
        if not dimensions:
            continue
        changed = rows.filter(tag__dimension__in=dimensions).values("contact_id")
        ids = set(changed.values_list("contact_id", flat=True))
        # A subquery, not a list: a bulk change names a hundred thousand contacts.
        linked = set(ContactLink.objects.filter(connection=connection, contact_id__in=changed)
                     .values_list("contact_id", flat=True))
        chosen = ids if len(ids - linked) <= SEARCH_LIMIT else linked
        targets += [(connection.pk, contact_id) for contact_id in sorted(chosen)]
    return targets


def contact_labels_push(*, connection_id: int, contact_id: int) -> str:
    """Make the contact's labels in Chatwoot show its tags of synced dimensions; leave its
    other labels alone. Idempotent: nothing is sent when they already agree. Raises
    ``ChatwootTransientError`` for the task to retry; a refusal is noted."""
    connection = ChatwootConnection.objects.filter(pk=connection_id, active=True).first()
    contact = Contact.objects.filter(pk=contact_id).first()
    if connection is None or contact is None:
        return "gone"
    labels = labels_of_tags(connection)
    held = {labels[t] for t in TagAssignment.objects.filter(
        contact=contact, tag_id__in=list(labels)).values_list("tag_id", flat=True)}
    try:
        with ChatwootClient(connection) as client:
            chatwoot_id = _chatwoot_id(connection, contact, client)
            if chatwoot_id is None:
                return "not_in_chatwoot"
            current = client.contact_labels(chatwoot_id)
            desired = sorted({c for c in current if c not in set(labels.values())} | held)
            if sorted(set(current)) == desired:
                return "unchanged"
            client.contact_labels_set(chatwoot_id, desired)
    except ChatwootError as exc:
        if exc.__class__ is not ChatwootError:
            raise  # transient: the task retries
        sync_note_add(connection=connection, contact=contact,
                      message=_("Chatwoot refused the labels of this contact: %(error)s")
                      % {"error": str(exc)})
        return "refused"
    return "updated"


def _chatwoot_id(connection: ChatwootConnection, contact: Contact,
                 client: ChatwootClient) -> int | None:
    link = ContactLink.objects.filter(connection=connection, contact=contact).first()
    if link:
        return link.chatwoot_id
    found = client.contact_search(contact.phone)
    if found is not None:
        contact_link(connection=connection, contact=contact, chatwoot_id=found)
    return found
