"""Webhook processing on a worker: statuses, replies, opt-outs (stored by ``campaigns.intake``).

Processing is idempotent: a status is stored once per (wamid, status),
applied only forward, and events carry ``<wamid>:<status>`` as source id.
Failed statuses follow the same error table as refused calls
(``campaigns.sending.error_consequences_apply``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from campaigns.backends import WhatsAppError
from campaigns.errors import POLICIES, SendFate
from campaigns.intake import DRAIN_FLAG
from campaigns.models import (
    Alert,
    InboundMessage,
    KeywordRule,
    OptOut,
    OptOutKeyword,
    Send,
    SendStatus,
    StatusEvent,
    WebhookDelivery,
)
from campaigns.sending import error_consequences_apply, send_defer
from campaigns.services import contact_opt_out
from crm.events import EventIn, events_record
from crm.models import ConsentStatus, Contact, EventKind
from crm.phones import try_normalize_phone
from crm.services import contact_set_consent
from tagging.models import Source
from tagging.services import tags_change

logger = logging.getLogger(__name__)

STATUS_EVENT = {"sent": EventKind.MESSAGE_SENT, "delivered": EventKind.MESSAGE_DELIVERED,
                "read": EventKind.MESSAGE_READ}
# A status may overwrite these current statuses (monotonic; failed is final).
FORWARD = {
    "sent": [SendStatus.QUEUED, SendStatus.SENDING],
    "delivered": [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.SENT],
    "read": [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.SENT, SendStatus.DELIVERED],
    "failed": [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.SENT],
}
STAMP = {"sent": "sent_at", "delivered": "delivered_at", "read": "read_at",
         "failed": "failed_at"}
REPLY_WINDOW = timedelta(days=7)

# Where other apps plug into inbound messages (from their AppConfig.ready()):
# a finder may return the contact of a message from a number we do not know yet
# (e.g. the message names an entry point's code), else the message is skipped;
# ``inbound_message_received`` is sent once per stored message (not for replays),
# with ``contact``, ``message`` (the webhook's dict), ``inbound`` and ``text``; a
# receiver may return a short note for the message's ``action`` column.
inbound_contact_finders: list[Callable[[dict], Contact | None]] = []
inbound_message_received = Signal()


def webhooks_drain(*, batch: int = 200) -> int:
    """Apply every stored, unprocessed webhook, oldest first; return how many.

    Several workers may drain at once: each claims its batch with ``SKIP LOCKED``.
    Each delivery is applied in its own savepoint, so one bad body is recorded with
    its error and does not hold up the rest. Beat's tick queues a drain whenever
    deliveries wait, so none is left behind if a flag outlives its drain.
    """
    cache.delete(DRAIN_FLAG)  # a webhook stored from now on queues the next drain
    done = 0
    while True:
        with transaction.atomic():
            ids = list(WebhookDelivery.objects.filter(processed_at__isnull=True)
                       .order_by("pk").select_for_update(skip_locked=True)
                       .values_list("pk", flat=True)[:batch])
            if not ids:
                return done
            applied = [d.pk for d in WebhookDelivery.objects.filter(pk__in=ids).order_by("pk")
                       if _apply(d)]
            # One UPDATE for the batch; deliveries that failed were stamped with their error.
            WebhookDelivery.objects.filter(pk__in=applied).update(processed_at=timezone.now())
        done += len(ids)


def _apply(delivery: WebhookDelivery) -> bool:
    """Apply one stored body in a savepoint; on failure stamp it with the error, False."""
    try:
        with transaction.atomic():
            payload_apply(payload=json.loads(bytes(delivery.body)))
        return True
    except (ValueError, KeyError, TypeError, AttributeError, DatabaseError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        logger.warning("webhook %s could not be processed: %s", delivery.pk, error)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(processed_at=timezone.now(),
                                                              error=error)
        return False


def payload_apply(*, payload: dict) -> None:
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if value.get("statuses"):
                statuses_apply(statuses=value["statuses"])
            if value.get("messages"):
                messages_apply(messages=value["messages"])
            if value.get("user_preferences"):
                preferences_apply(preferences=value["user_preferences"])
            for error in value.get("errors") or []:
                Alert.objects.create(code=error.get("code"), message=(
                    f"WhatsApp reported error {error.get('code')} for the account: "
                    f"{error.get('title') or error.get('message')}"))


def _when(raw) -> datetime:
    try:
        return datetime.fromtimestamp(int(raw), tz=UTC)
    except (TypeError, ValueError):
        return timezone.now()


def _find_send(status: dict) -> Send | None:
    wamid = status.get("id", "")
    send = Send.objects.filter(wamid=wamid).select_related("contact", "campaign").first() \
        if wamid else None
    data = status.get("biz_opaque_callback_data") or ""
    if send is None and data.startswith("tw:") and data[3:].isdigit():
        if wamid and StatusEvent.objects.filter(wamid=wamid).exists():
            # A known message the send has moved on from (requeued after 131049): stale.
            return None
        # The webhook beat our own write of the wamid (or the worker died after the call).
        send = Send.objects.filter(pk=int(data[3:])).select_related("contact", "campaign").first()
        if send is not None and not send.wamid:
            Send.objects.filter(pk=send.pk, wamid="").update(wamid=wamid)
            send.wamid = wamid
    return send


def statuses_apply(*, statuses: list[dict]) -> int:
    """Apply status webhooks monotonically; return how many changed a send."""
    changed, events = 0, []
    for status in statuses:
        name = status.get("status")
        if name not in FORWARD:
            continue
        wamid = status.get("id", "")
        send = _find_send(status)
        occurred = _when(status.get("timestamp"))
        errors = status.get("errors") or []
        code = errors[0].get("code") if errors else None
        error = _error_of(errors[0]) if code is not None else None
        try:
            with transaction.atomic():
                StatusEvent.objects.create(send=send, wamid=wamid, status=name,
                                           occurred_at=occurred, error_code=code,
                                           payload=status)
        except IntegrityError:
            continue  # this (wamid, status) was applied already
        if send is None:
            continue
        if name == "failed" and error and POLICIES[error.action].fate == SendFate.DEFER:
            if send_defer(send_id=send.pk, error=error, statuses=FORWARD["failed"]):
                changed += 1
            continue
        updates = {"status": name, STAMP[name]: occurred, "claim": None}
        if name == "failed":
            updates.update(error_code=code, error_detail=str(
                (errors[0].get("error_data") or {}).get("details") or errors[0].get("title")
                or "")[:500] if errors else "")
        rows = Send.objects.filter(pk=send.pk, status__in=FORWARD[name])
        if rows.update(**updates):
            changed += 1
        # Timestamps fill in even when the status is already further (read before delivered).
        if name != "failed":
            Send.objects.filter(pk=send.pk, **{f"{STAMP[name]}__isnull": True}).update(
                **{STAMP[name]: occurred})
        if name == "read":
            Send.objects.filter(pk=send.pk, delivered_at__isnull=True).update(
                delivered_at=occurred)
        if name in STATUS_EVENT:
            events.append(EventIn(kind=STATUS_EVENT[name], contact_id=send.contact_id,
                                  occurred_at=occurred, source_id=f"{wamid}:{name}",
                                  payload={"campaign": send.campaign_id,
                                           "variant": send.variant}))
        elif error is not None:
            # Asynchronous failures follow the same error table as refused calls.
            error_consequences_apply(campaign=send.campaign, send=send, error=error)
    if events:
        events_record(events=events, source="campaign")
    return changed


def _error_of(error: dict) -> WhatsAppError:
    """The error of a failed status webhook, as the send loop would have seen it."""
    details = (error.get("error_data") or {}).get("details") or ""
    return WhatsAppError(int(error["code"]), error.get("title") or error.get("message") or "",
                         details=str(details))


def _contact_for(wa_id: str) -> Contact | None:
    phone = try_normalize_phone("+" + wa_id.lstrip("+")) if wa_id else None
    return Contact.objects.filter(phone=phone).first() if phone else None


def _text_of(message: dict) -> str:
    kind = message.get("type")
    if kind == "text":
        return (message.get("text") or {}).get("body", "")
    if kind == "button":
        return (message.get("button") or {}).get("text", "")
    if kind == "interactive":
        inner = message.get("interactive") or {}
        reply = inner.get("button_reply") or inner.get("list_reply") or {}
        return reply.get("title", "")
    return ""


def _normalise(text: str) -> str:
    return text.strip().strip(".!?。！ ").casefold()


def is_opt_out(text: str) -> bool:
    """Whole-message match against the active opt-out keywords (case-insensitive)."""
    words = {_normalise(w) for w in OptOutKeyword.objects.filter(active=True)
             .values_list("word", flat=True)}
    return bool(text) and _normalise(text) in words


def messages_apply(*, messages: list[dict]) -> int:
    """Store inbound messages once, attribute them, apply opt-outs and keyword rules."""
    handled, events = 0, []
    for message in messages:
        contact = _contact_for(message.get("from", "")) or next(
            (found for finder in inbound_contact_finders if (found := finder(message))), None)
        if contact is None:
            continue
        occurred = _when(message.get("timestamp"))
        text = _text_of(message)
        send = _attribute(contact, message, occurred)
        try:
            with transaction.atomic():
                inbound = InboundMessage.objects.create(
                    message_id=message.get("id", ""), contact=contact, send=send,
                    kind=message.get("type", ""), text=text[:4096], occurred_at=occurred,
                    payload=message)
        except IntegrityError:
            continue  # delivered twice
        handled += 1
        actions = []
        if send is not None:
            Send.objects.filter(pk=send.pk, replied_at__isnull=True).update(replied_at=occurred)
            actions.append(f"reply to campaign {send.campaign_id} {send.variant}".strip())
        events.append(EventIn(kind=EventKind.MESSAGE_REPLIED, contact_id=contact.pk,
                              occurred_at=occurred, source_id=message.get("id", ""),
                              payload={"campaign": send.campaign_id if send else None,
                                       "variant": send.variant if send else ""}))
        if is_opt_out(text):
            contact_opt_out(contact=contact, source="keyword", detail=text[:100])
            actions.append("opted out")
            logger.info("contact %s opted out by keyword %r; confirmation logged", contact.pk,
                        text)
        else:
            folded = text.casefold()
            for rule in KeywordRule.objects.filter(active=True).select_related("tag"):
                words = [w.strip().casefold() for w in rule.keywords.split(",") if w.strip()]
                if any(w in folded for w in words):
                    tags_change(contacts=[contact.pk], add=[rule.tag], source=Source.CAMPAIGN,
                                source_ref=f"keyword rule {rule.pk}")
                    actions.append(f"tagged {rule.tag.name}")
        actions += [note for _receiver, note in inbound_message_received.send(
            sender=InboundMessage, contact=contact, message=message, inbound=inbound, text=text)
            if note]
        if actions:
            InboundMessage.objects.filter(pk=inbound.pk).update(action="; ".join(actions)[:200])
    if events:
        events_record(events=events, source="campaign")
    return handled


def _attribute(contact: Contact, message: dict, occurred: datetime) -> Send | None:
    context = (message.get("context") or {}).get("id")
    if context:
        send = Send.objects.filter(wamid=context).first()
        if send is not None:
            return send
    return (Send.objects.filter(contact=contact, sent_at__isnull=False,
                                sent_at__gte=occurred - REPLY_WINDOW, sent_at__lte=occurred)
            .order_by("-sent_at").first())


def preferences_apply(*, preferences: list[dict]) -> int:
    """``user_preferences`` stop → opted out; resume undoes only our own platform opt-out."""
    changed = 0
    for preference in preferences:
        if preference.get("category", "marketing_messages") != "marketing_messages":
            continue
        contact = _contact_for(preference.get("wa_id", ""))
        if contact is None:
            continue
        value = preference.get("value")
        if value == "stop":
            changed += contact_opt_out(contact=contact, source="user_preferences",
                                       detail=preference.get("detail", "stop"))
        elif value == "resume":
            last = OptOut.objects.filter(contact=contact).first()
            if last and last.source == "user_preferences" and not last.resumed:
                if contact_set_consent(contact=contact, status=ConsentStatus.OPTED_IN,
                                       source="whatsapp user_preferences: resume"):
                    changed += 1
                OptOut.objects.create(contact=contact, source="user_preferences",
                                      detail=preference.get("detail", "resume"), resumed=True)
    return changed
