"""Applying status webhooks: each (wamid, status) once, forward only, each time in its own field.

Set-based per batch of the drain (``campaigns.webhooks``): the sends are locked in
id order, the new (wamid, status) pairs stored in one insert, the sends moved
forward in one batch of updates, and their events recorded with one
``events_record`` call. Failed statuses follow the same error table as refused
calls (``campaigns.sending.error_consequences_apply``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connection

from campaigns.backends import WhatsAppError
from campaigns.errors import POLICIES, SendFate
from campaigns.models import Send, SendStatus, StatusEvent
from campaigns.sending import error_consequences_apply, send_defer
from campaigns.webhook_input import StatusIn
from crm.events import EventIn, events_record
from crm.models import EventKind

CHUNK = 500  # ids per IN (...) list
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
ORDER = {"sent": 0, "delivered": 1, "read": 2, "failed": 3}
SEND_FIELDS = ["status", "claim", "sent_at", "delivered_at", "read_at", "failed_at",
               "error_code", "error_detail"]


def sends_lock(*, statuses: Sequence[StatusIn], contexts: Sequence[str] = ()
               ) -> dict[str, Send]:
    """wamid → its send, each locked (in id order) for the rest of the transaction.

    A status whose wamid is not stored yet finds its send by our callback data
    ``tw:<id>`` (the webhook beat the send loop's own write, or its worker died
    after the call) and adopts it — unless that wamid was seen before: then the
    send has moved on (queued again after 131049) and the status is stale.
    """
    wamids = {s.wamid for s in statuses} | set(contexts)
    found: dict[str, int] = {}
    for chunk in chunks(sorted(wamids)):
        found.update(Send.objects.filter(wamid__in=chunk).values_list("wamid", "pk"))
    orphans = {s.wamid: s.send_id for s in statuses if s.wamid not in found and s.send_id}
    stale: set[str] = set()
    for chunk in chunks(sorted(orphans)):
        stale.update(StatusEvent.objects.filter(wamid__in=chunk)
                     .values_list("wamid", flat=True))
    adopt = {w: pk for w, pk in orphans.items() if w not in stale}
    locked: dict[int, Send] = {}
    for chunk in chunks(sorted(set(found.values()) | set(adopt.values()))):
        locked.update((s.pk, s) for s in Send.objects.filter(pk__in=chunk).order_by("pk")
                      .select_for_update())
    result = {w: locked[pk] for w, pk in found.items()
              if pk in locked and locked[pk].wamid == w}
    for wamid, pk in sorted(adopt.items()):
        send = locked.get(pk)
        if send is not None and send.wamid == "":
            Send.objects.filter(pk=pk).update(wamid=wamid)
            send.wamid = wamid
        if send is not None and send.wamid == wamid:
            result[wamid] = send
    return result


def statuses_apply(*, statuses: Sequence[StatusIn], sends: dict[str, Send] | None = None
                   ) -> int:
    """Apply status webhooks monotonically, each (wamid, status) once; return how many
    moved a send forward."""
    if not statuses:
        return 0
    first = list({(s.wamid, s.status): s for s in reversed(statuses)}.values())
    sends = sends_lock(statuses=first) if sends is None else sends
    new = _status_events_record(first, sends)
    changed, events, after = _sends_advance(new, sends)
    if events:
        events_record(events=events, source="campaign")
    for action in after:
        changed += bool(action())
    return changed


def _status_events_record(statuses: list[StatusIn], sends: dict[str, Send]
                          ) -> list[StatusIn]:
    """Store the (wamid, status) pairs seen for the first time; return those statuses.

    The sends are locked, so no other drain stores a pair of theirs meanwhile; a pair of
    an unknown message stored twice at once is harmless (it changes nothing).
    """
    seen: set[tuple[str, str]] = set()
    for chunk in chunks(sorted({s.wamid for s in statuses})):
        seen.update(StatusEvent.objects.filter(wamid__in=chunk)
                    .values_list("wamid", "status"))
    new = sorted((s for s in statuses if (s.wamid, s.status) not in seen),
                 key=lambda s: (s.wamid, s.status))
    StatusEvent.objects.bulk_create([
        StatusEvent(send=sends.get(s.wamid), wamid=s.wamid, status=s.status,
                    occurred_at=s.occurred_at, error_code=s.error.code if s.error else None,
                    payload=s.payload) for s in new], batch_size=CHUNK, ignore_conflicts=True)
    return new


def _sends_advance(statuses: list[StatusIn], sends: dict[str, Send]
                   ) -> tuple[int, list[EventIn], list[Callable[[], Any]]]:
    """Move each send forward; each status fills its own time, none moves a send back.

    A ``read`` before its ``delivered`` leaves ``delivered_at`` empty until the
    ``delivered`` comes: the report counts a read message as delivered either way.
    """
    by_send: dict[int, list[StatusIn]] = defaultdict(list)
    by_pk = {s.pk: s for s in sends.values()}
    for status in statuses:
        if status.wamid in sends:
            by_send[sends[status.wamid].pk].append(status)
    changed, events, after, dirty = 0, [], [], {}
    for pk, items in by_send.items():
        send = by_pk[pk]
        for status in sorted(items, key=lambda s: ORDER[s.status]):
            error = status.error
            if status.status == "failed" and error and \
                    POLICIES[error.action].fate == SendFate.DEFER:
                after.append(partial(send_defer, send_id=pk, error=error,
                                     statuses=FORWARD["failed"]))
                continue
            stamp = STAMP[status.status]
            if send.status in FORWARD[status.status]:
                send.status, send.claim = status.status, None
                setattr(send, stamp, status.occurred_at)
                if status.status == "failed":
                    send.error_code = error.code if error else None
                    send.error_detail = (error.details or error.message)[:500] if error else ""
                changed += 1
                dirty[pk] = send
            elif status.status != "failed" and getattr(send, stamp) is None:
                setattr(send, stamp, status.occurred_at)
                dirty[pk] = send
            if status.status in STATUS_EVENT:
                events.append(EventIn(
                    kind=STATUS_EVENT[status.status], contact_id=send.contact_id,
                    occurred_at=status.occurred_at, source_id=f"{status.wamid}:{status.status}",
                    payload={"campaign": send.campaign_id, "variant": send.variant}))
            elif error is not None:
                # Asynchronous failures follow the same error table as refused calls.
                after.append(partial(_consequences, pk, error))
    _sends_write(list(dirty.values()))
    return changed, events, after


def _sends_write(sends: list[Send]) -> None:
    """Write the status fields of locked sends: one UPDATE per send, sent as one batch.

    ``bulk_update`` would build a CASE per field and row; its Python alone took
    seconds per 200 sends.
    """
    if not sends:
        return
    fields = [Send._meta.get_field(name) for name in SEND_FIELDS]
    qn = connection.ops.quote_name
    sql = (f"UPDATE {qn(Send._meta.db_table)} SET "
           + ", ".join(f"{qn(f.column)} = %s" for f in fields) + f" WHERE {qn('id')} = %s")
    rows = [[f.get_db_prep_save(getattr(send, f.attname), connection) for f in fields]
            + [send.pk] for send in sends]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _consequences(send_id: int, error: WhatsAppError) -> None:
    send = Send.objects.select_related("campaign", "contact").get(pk=send_id)
    error_consequences_apply(campaign=send.campaign, send=send, error=error)


def chunks(items: Sequence, size: int = CHUNK) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def status_events_prune(before: datetime, limit: int) -> int:
    """Delete up to ``limit`` status webhooks received before ``before`` (retention); the
    send keeps its status and times."""
    ids = list(StatusEvent.objects.filter(received_at__lt=before).order_by()
               .values_list("pk", flat=True)[:limit])
    return StatusEvent.objects.filter(pk__in=ids).delete()[0] if ids else 0
