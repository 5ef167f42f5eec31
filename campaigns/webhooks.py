"""Applying stored webhooks on a worker: statuses, replies, opt-outs (intake: ``campaigns.intake``).

A drain cannot lose a webhook or stall behind one:

* **One transaction per batch.** A drain claims a batch of waiting deliveries
  (oldest first, ``FOR UPDATE SKIP LOCKED``, so several drains share the work),
  applies them and stamps them processed in the same transaction. A drain killed
  half-way holds nothing: the database releases its batch and the next drain
  (beat's tick queues one every 2 s while deliveries wait) applies it.
* **Checked before applied.** Each body is read by ``campaigns.webhook_input``;
  what cannot be applied is set aside with a sentence (the admin's dead-letter
  list, with replay), the rest of the body and of the batch is applied.
* **Ordered locks.** A batch locks the sends it touches in id order, then their
  contacts in id order (``crm.services.contacts_lock``), before writing anything,
  so drains that share sends or contacts queue instead of deadlocking.
* **Transient errors retried.** A deadlock, serialization failure or lost
  connection rolls the batch back; it is tried again with backoff, then one
  delivery at a time, and a delivery that still fails waits (``retry_at``) for a
  later drain. It is never recorded as processed.
* **Isolation.** A delivery that passes the checks but fails to apply for a
  reason of its own (a fault in Tagwerk) is set aside with the error; the batch
  is applied one delivery at a time to find it.

Applying is idempotent: a status is stored once per (wamid, status) and only
moves a send forward, each time in its own field (``campaigns.statuses``); an
inbound message is stored once per message id.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.intake import DRAIN_FLAG, DRAIN_TASK
from campaigns.metrics import WEBHOOK_LAG, WEBHOOKS_PROCESSED
from campaigns.models import (
    Alert,
    InboundMessage,
    KeywordRule,
    OptOut,
    Send,
    WebhookDelivery,
)
from campaigns.selectors import opt_out_words, webhooks_waiting
from campaigns.services import (
    contact_opt_out,
    deletion_request_receive,
    deletion_words,
    keyword_fold,
)
from campaigns.statuses import sends_lock, statuses_apply
from campaigns.transient import backoff, connection_recover, is_transient
from campaigns.webhook_input import (
    MessageIn,
    Parsed,
    PreferenceIn,
    parse_body,
    parse_payload,
)
from crm.events import EventIn, events_record
from crm.jobs import enqueue
from crm.models import ConsentStatus, Contact, EventKind
from crm.phones import try_normalize_phone
from crm.privacy import Subject
from crm.selectors import contact_ids_by_phone, contacts_by_phone
from crm.services import contact_set_consent, contacts_lock
from tagging.models import Source
from tagging.services import tags_change

logger = logging.getLogger(__name__)

# Deliveries per transaction: 1,000 applied ~1.7x as many per second as 200 in one drain
# (docs/benchmarks.md, "Webhook intake").
BATCH = 1000
TRIES = 4  # tries of a batch (then of each delivery) on transient errors
DRAIN_SECONDS = 30.0  # then a fresh task carries on: under the broker's 45 s visibility timeout
RETRY_CAP = 300  # seconds: the longest a delivery waits between transient failures
REPLY_WINDOW = timedelta(days=7)

# Where other apps plug into inbound messages (from their AppConfig.ready()):
# a finder may return the contact of a message from a number we do not know yet
# (e.g. the message names an entry point's code), else the message is skipped;
# ``inbound_message_received`` is sent once per stored message (not for replays),
# with ``contact``, ``message`` (the checked ``MessageIn``: wa_id, text, occurred_at,
# and the webhook's item as ``payload``) and ``inbound``; a receiver may return a
# short note for the message's ``action`` column.
inbound_contact_finders: list[Callable[[MessageIn], Contact | None]] = []
inbound_message_received = Signal()


# --- The drain --------------------------------------------------------------------------

def webhooks_drain(*, batch: int = BATCH, max_seconds: float = DRAIN_SECONDS) -> int:
    """Apply the stored webhooks that wait, oldest first; return how many were handled.

    Safe to run in several workers at once, and to kill at any moment.
    """
    cache.delete(DRAIN_FLAG)  # a webhook stored from now on queues the next drain
    done, deadline = 0, time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        count = _drain_batch(batch)
        if count is None:
            return done
        done += count
    enqueue(DRAIN_TASK)  # more is waiting: a fresh task goes on
    return done


def webhooks_replay(*, ids: Collection[int]) -> int:
    """Queue set-aside deliveries again (after a fix); return how many.

    Replaying applies nothing twice: statuses, inbound messages and their events are
    stored once. Account alerts and opt-out log entries of the body are written again.
    """
    count = WebhookDelivery.objects.filter(pk__in=ids, processed_at__isnull=False).exclude(
        error="").update(processed_at=None, error="", retry_at=None, attempts=0)
    if count:
        enqueue(DRAIN_TASK)
    return count


def _drain_batch(size: int) -> int | None:
    """Apply one batch; None when nothing waits."""
    error: DatabaseError | None = None
    for attempt in range(TRIES):
        try:
            return _apply_batch(size)
        except DatabaseError as exc:
            if not is_transient(exc):
                raise
            error = exc
            logger.warning("webhook batch met a transient error (try %d): %s", attempt + 1, exc)
            connection_recover()
            time.sleep(backoff(attempt))
    return _drain_singly(size, error)


def _drain_singly(size: int, error: DatabaseError | None) -> int | None:
    """The batch keeps failing: apply its deliveries one by one; postpone those that fail."""
    ids = list(webhooks_waiting().order_by("pk").values_list("pk", flat=True)[:size])
    if not ids:
        return None
    for pk in ids:
        for attempt in range(TRIES):
            try:
                _apply_batch(1, pk=pk)
                break
            except DatabaseError as exc:
                if not is_transient(exc):
                    raise
                error = exc
                connection_recover()
                time.sleep(backoff(attempt))
        else:
            _postpone(pk, error)
    return len(ids)


def _apply_batch(size: int, *, pk: int | None = None) -> int | None:
    """Claim, read, apply and stamp up to ``size`` deliveries in one transaction."""
    with transaction.atomic():
        rows = webhooks_waiting()
        if pk is not None:
            rows = rows.filter(pk=pk)
        deliveries = list(rows.order_by("pk").select_for_update(skip_locked=True)
                          .only("pk", "body", "received_at")[:size])
        if not deliveries:
            return None
        parsed = {d.pk: _read(d) for d in deliveries}
        failed = _apply_isolated(parsed)
        clean = _stamp(parsed, failed)
    _processed_count(deliveries, clean)  # committed: a batch rolled back is not counted
    return len(deliveries)


def _processed_count(deliveries: list[WebhookDelivery], clean: set[int]) -> None:
    now = timezone.now()
    for delivery in deliveries:
        WEBHOOK_LAG.observe(max(0.0, (now - delivery.received_at).total_seconds()))
        WEBHOOKS_PROCESSED.labels(outcome="applied" if delivery.pk in clean
                                  else "set_aside").inc()


def _read(delivery: WebhookDelivery) -> Parsed:
    """The checked body; a fault in the checks sets this one delivery aside, not the batch."""
    try:
        return parse_body(bytes(delivery.body), received_at=delivery.received_at)
    except Exception as exc:  # parse_body is meant never to raise: isolate if it does
        logger.exception("webhook %s could not be read", delivery.pk)
        return Parsed(problems=[_(
            "It could not be read (%(kind)s: %(error)s); this points to a fault in Tagwerk: "
            "replay it once that is fixed.") % {"kind": type(exc).__name__,
                                               "error": str(exc)[:300]}])


def _apply_isolated(parsed: dict[int, Parsed]) -> dict[int, str]:
    """Apply every delivery's items; return the sentence for each one that failed."""
    merged = Parsed()
    for one in parsed.values():
        merged.extend(one)
    try:
        with transaction.atomic():
            parsed_apply(merged)
        return {}
    # Any failure that is not transient may come from one delivery's content: find it
    # by applying them one at a time, set it aside, and apply the others.
    except Exception as exc:
        if is_transient(exc):
            raise
        logger.warning("webhook batch failed (%s); applying one delivery at a time", exc)
    failed = {}
    for pk, one in parsed.items():
        try:
            with transaction.atomic():
                parsed_apply(one)
        except Exception as exc:
            if is_transient(exc):
                raise
            logger.exception("webhook %s could not be applied", pk)
            failed[pk] = _(
                "It could not be applied (%(kind)s: %(error)s). The body passed every check, "
                "so this points to a fault in Tagwerk or the database; replay it once that "
                "is fixed.") % {"kind": type(exc).__name__, "error": str(exc)[:300]}
    return failed


def _stamp(parsed: dict[int, Parsed], failed: dict[int, str]) -> set[int]:
    """Stamp the deliveries processed; return those applied cleanly (the rest set aside)."""
    now = timezone.now()
    clean = [pk for pk, one in parsed.items() if not one.problems and pk not in failed]
    WebhookDelivery.objects.filter(pk__in=clean).update(processed_at=now, error="",
                                                        retry_at=None)
    for pk, one in parsed.items():
        if pk in clean:
            continue
        error = " ".join(part for part in (one.summary(), failed.get(pk, "")) if part)
        logger.warning("webhook %s set aside: %s", pk, error)
        WebhookDelivery.objects.filter(pk=pk).update(processed_at=now, error=error,
                                                     retry_at=None)
    return set(clean)


def _postpone(pk: int, error: DatabaseError | None) -> None:
    """Leave a delivery waiting after repeated transient errors; a later drain tries again."""
    attempts = (WebhookDelivery.objects.filter(pk=pk).values_list("attempts", flat=True)
                .first() or 0) + 1
    wait = min(RETRY_CAP, 2 ** attempts)
    WebhookDelivery.objects.filter(pk=pk, processed_at__isnull=True).update(
        attempts=attempts, retry_at=timezone.now() + timedelta(seconds=wait),
        error=_("Waiting to be tried again in %(seconds)d s: attempt %(n)d met a passing "
                "database error (%(error)s).") % {"seconds": wait, "n": attempts,
                                                  "error": str(error)[:300]})
    logger.warning("webhook %s postponed %ss after %d attempts: %s", pk, wait, attempts, error)


# --- Applying checked items --------------------------------------------------------------

def payload_apply(*, payload: Any) -> Parsed:
    """Check and apply one decoded body in a transaction; return what was found in it."""
    parsed = parse_payload(payload, received_at=timezone.now())
    with transaction.atomic():
        parsed_apply(parsed)
    return parsed


def parsed_apply(parsed: Parsed) -> None:
    """Apply checked items in the current transaction, locks taken in a fixed order."""
    sends = sends_lock(statuses=parsed.statuses,
                       contexts=[m.context_id for m in parsed.messages if m.context_id])
    phones = {p for p in (_phone(x.wa_id) for x in (*parsed.messages, *parsed.preferences))
              if p}
    contacts_lock(ids={send.contact_id for send in sends.values()}
                  | set(contact_ids_by_phone(phones).values()))
    statuses_apply(statuses=parsed.statuses, sends=sends)
    messages_apply(messages=parsed.messages)
    preferences_apply(preferences=parsed.preferences)
    for error in parsed.account_errors:
        Alert.objects.create(code=error.code, message=_(
            "WhatsApp reported error %(code)s for the account: %(title)s")
            % {"code": error.code, "title": error.title})


# --- Inbound messages and preferences -------------------------------------------------------

def _phone(wa_id: str) -> str | None:
    return try_normalize_phone("+" + wa_id.lstrip("+")) if wa_id else None


def _contact_for(wa_id: str) -> Contact | None:
    phone = _phone(wa_id)
    return Contact.objects.filter(phone=phone).first() if phone else None


def _opt_out_words() -> frozenset[str]:
    return frozenset(keyword_fold(w) for w in opt_out_words())


def is_opt_out(text: str, words: frozenset[str] | None = None) -> bool:
    """Whole-message match against the active opt-out keywords (case-insensitive);
    ``words`` read once for a batch, or here when None."""
    return bool(text) and keyword_fold(text) in (_opt_out_words() if words is None else words)


@dataclass(frozen=True)
class Keywords:
    """The active opt-out and deletion keywords and keyword rules, read once per batch."""

    opt_out: frozenset[str]
    deletion: frozenset[str]
    rules: tuple[tuple[KeywordRule, tuple[str, ...]], ...]

    @classmethod
    def load(cls) -> Keywords:
        rules = tuple(
            (rule, tuple(w.strip().casefold() for w in rule.keywords.split(",") if w.strip()))
            for rule in KeywordRule.objects.filter(active=True).select_related("tag"))
        return cls(_opt_out_words(), deletion_words(), rules)


def _contacts_of(messages: Sequence[MessageIn]) -> dict[str, Contact]:
    return contacts_by_phone({p for p in (_phone(m.wa_id) for m in messages) if p})


def messages_apply(*, messages: Sequence[MessageIn]) -> int:
    """Store inbound messages once, attribute them, apply opt-outs and keyword rules.

    The keywords and the senders' contacts are read once for the batch."""
    handled, events = 0, []
    keywords = Keywords.load() if messages else None
    contacts = _contacts_of(messages)
    for message in messages:
        phone = _phone(message.wa_id)
        contact = contacts.get(phone) or next(
            (found for finder in inbound_contact_finders if (found := finder(message))), None)
        if contact is None:
            continue
        if phone:
            contacts[phone] = contact  # a finder's new contact, for the batch's next message
        send = _attribute(contact, message)
        try:
            with transaction.atomic():
                inbound = InboundMessage.objects.create(
                    message_id=message.message_id, contact=contact, send=send,
                    kind=message.kind, text=message.text, occurred_at=message.occurred_at,
                    payload=message.payload)
        except IntegrityError:
            continue  # delivered twice
        handled += 1
        actions = []
        if send is not None:
            Send.objects.filter(pk=send.pk, replied_at__isnull=True).update(
                replied_at=message.occurred_at)
            actions.append(f"reply to campaign {send.campaign_id} {send.variant}".strip())
        events.append(EventIn(kind=EventKind.MESSAGE_REPLIED, contact_id=contact.pk,
                              occurred_at=message.occurred_at, source_id=message.message_id,
                              payload={"campaign": send.campaign_id if send else None,
                                       "variant": send.variant if send else ""}))
        actions.extend(_act_on_text(contact, message.text, keywords))
        actions += [note for _receiver, note in inbound_message_received.send(
            sender=InboundMessage, contact=contact, message=message, inbound=inbound) if note]
        if actions:
            InboundMessage.objects.filter(pk=inbound.pk).update(action="; ".join(actions)[:200])
    if events:
        events_record(events=events, source="campaign")
    return handled


def _act_on_text(contact: Contact, text: str, keywords: Keywords) -> list[str]:
    """Deletion request or its confirmation, else opt-out keyword, else keyword rules: what
    was done, for the message's log."""
    erasure = deletion_request_receive(contact=contact, text=text, words=keywords.deletion)
    if erasure:
        return [erasure]
    if is_opt_out(text, keywords.opt_out):
        contact_opt_out(contact=contact, source="keyword", detail=text[:100])
        logger.info("contact %s opted out by keyword %r; confirmation logged", contact.pk, text)
        return ["opted out"]
    actions, folded = [], text.casefold()
    for rule, words in keywords.rules:
        if any(w in folded for w in words):
            tags_change(contacts=[contact.pk], add=[rule.tag], source=Source.CAMPAIGN,
                        source_ref=f"keyword rule {rule.pk}")
            actions.append(f"tagged {rule.tag.name}")
    return actions


def _attribute(contact: Contact, message: MessageIn) -> Send | None:
    if message.context_id:
        send = Send.objects.filter(wamid=message.context_id).first()
        if send is not None:
            return send
    occurred = message.occurred_at
    return (Send.objects.filter(contact=contact, sent_at__isnull=False,
                                sent_at__gte=occurred - REPLY_WINDOW, sent_at__lte=occurred)
            .order_by("-sent_at").first())


def preferences_apply(*, preferences: Sequence[PreferenceIn]) -> int:
    """``user_preferences`` stop → opted out; resume undoes only our own platform opt-out."""
    changed = 0
    for preference in preferences:
        contact = _contact_for(preference.wa_id)
        if contact is None:
            continue
        if preference.value == "stop":
            changed += contact_opt_out(contact=contact, source="user_preferences",
                                       detail=preference.detail or "stop")
        elif preference.value == "resume":
            last = OptOut.objects.filter(contact=contact).first()
            if last and last.source == "user_preferences" and not last.resumed:
                if contact_set_consent(contact=contact, status=ConsentStatus.OPTED_IN,
                                       source="whatsapp user_preferences: resume"):
                    changed += 1
                OptOut.objects.create(contact=contact, source="user_preferences",
                                      detail=preference.detail or "resume", resumed=True)
    return changed


# --- Privacy: raw bodies of an erased number; retention (docs/privacy.md) ------------------

def webhook_bodies_erase(*, subject: Subject) -> int:
    """Empty every stored body that names the subject's number; keep the row and its hash,
    so a replay of the body is still recognised and ignored.

    WhatsApp writes a number as its quoted international digits (``"wa_id":"4917…"``,
    ``"from"``, ``"recipient_id"``), so that quoted token is searched: bodies of another
    number whose digits merely contain the subject's (or a timestamp that does) stay.
    One statement: the bytes are searched in the database (``position`` on PostgreSQL,
    ``instr`` on SQLite). A body still waiting is marked done, with nothing left to apply.
    """
    digits = re.sub(r"\D", "", subject.phone)
    if len(digits) < 6:
        return 0
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    where = ("position(%s::bytea in body) > 0" if connection.vendor == "postgresql"
             else "instr(body, %s) > 0")
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET body = %s, processed_at = COALESCE(processed_at, %s), "
            f"retry_at = NULL WHERE {where}",
            [b"", now, f'"{digits}"'.encode()])
        return max(cursor.rowcount, 0)


def webhook_bodies_prune(before: datetime, limit: int) -> int:
    """Delete up to ``limit`` deliveries processed before ``before`` (applied or set aside)."""
    ids = list(WebhookDelivery.objects.filter(processed_at__lt=before).order_by()
               .values_list("pk", flat=True)[:limit])
    return WebhookDelivery.objects.filter(pk__in=ids).delete()[0] if ids else 0


def inbound_texts_prune(before: datetime, limit: int) -> int:
    """Empty the text and payload of up to ``limit`` inbound messages older than ``before``;
    the rows stay (reply counts and attribution)."""
    ids = list(InboundMessage.objects.filter(occurred_at__lt=before)
               .exclude(text="", payload={}).order_by().values_list("pk", flat=True)[:limit])
    return InboundMessage.objects.filter(pk__in=ids).update(text="", payload={}) if ids else 0
