"""The send loop: claim due sends, guard, send, record; the error table applied to refusals.

Exactly once, in one paragraph: a send is *claimed* (``queued → sending`` in
one conditional UPDATE, ``SKIP LOCKED`` on PostgreSQL) before its network
call, stamped *handed* (``handed_at``, again conditional on the claim) once
its rate slot is reserved and before the request (a run of sends at a time),
and its outcome is written with another conditional UPDATE (accepted ones in
bulk); the call runs outside any transaction, in a thread that does HTTP only. A claimed send is
never claimed again, so no recipient can get two messages from two workers. A
worker killed mid-send leaves its sends in flight: those never handed over are
queued again once the loop's lease is over (``LEASE_SECONDS``); one handed over
may have reached WhatsApp, so a status webhook carrying its callback data
(``biz_opaque_callback_data``) adopts it, and if none arrives within
``WHATSAPP_INFLIGHT_GRACE_SECONDS`` it is presumed never accepted and queued
again. The remaining window is documented in docs/campaigns.md.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, CharField, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.audience import unreachable_reason
from campaigns.backends import (
    AmbiguousSendError,
    BaseBackend,
    SendResult,
    TemplateMessage,
    WhatsAppError,
    get_backend,
)
from campaigns.content import message_for
from campaigns.errors import POLICIES, Consequence, Policy, SendFate
from campaigns.metrics import SEND_RATE, SEND_RATE_CONFIGURED, SENDS, code_label
from campaigns.models import (
    Alert,
    Campaign,
    CampaignStatus,
    Lease,
    Send,
    Sender,
    SendStatus,
    Template,
    TemplateCategory,
    WebhookDelivery,
)
from campaigns.schedule import quiet_until
from campaigns.selectors import (
    campaign_sends_due,
    campaign_templates,
    daily_budget_left,
    due_sends,
)
from campaigns.services import (
    campaign_abort,
    campaign_finish_if_done,
    campaign_pause,
    contact_opt_out,
    sender_stop,
)
from campaigns.throttle import LATE, Bucket, RateLimiterUnavailable, busy_wait, get_bucket
from crm.privacy import numbers_erased

logger = logging.getLogger(__name__)

# A slice of sending fits well inside its lease; a worker killed mid-slice frees
# its slot, and the sends it claimed but never handed over, when the lease runs out.
# A task's turn in a slot is a few slices, the lease renewed between them, and ends
# well inside the broker's visibility timeout (45 s), so Celery never delivers it twice.
SLICE_SECONDS, LEASE_SECONDS, TURN_SECONDS = 10, 15, 30
HALT = "halt"  # a guard's verdict: stop the loop and give back what is claimed
BATCH_MAX = 200  # sends claimed at once (a quarter second's worth, up to this)
RUN_SECONDS = 0.1  # slots reserved and stamped at once: this long of sending
SUBMIT_AHEAD = 0.005  # a request goes to the pool this long before its slot
RECORD_EVERY = 100  # accepted sends recorded in one UPDATE (and at the end of a claim)
HTTP_WAIT = 60.0  # seconds to wait for a request in flight (the HTTP timeout is 20)


@dataclass
class LoopResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0
    skipped: int = 0
    stopped: str = ""


@dataclass
class Loop:
    """What one run of the send loop works with."""

    campaign: Campaign
    templates: dict[str, Template]
    backend: BaseBackend
    bucket: Bucket
    batch: int
    limit: int = 0  # how many to claim next: the batch, within the daily budget
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    pool: ThreadPoolExecutor | None = None  # the requests run here (None: one at a time)
    threads: int = 1  # the pool's size: requests in flight at most
    window: int = 1  # requests allowed in flight now (``Flight._make_room``)
    erased: set[str] | None = None  # the claim's numbers erased on request (one query)

    @property
    def marketing(self) -> bool:
        return self.campaign.template.category == TemplateCategory.MARKETING

    @property
    def run(self) -> int:
        """How many slots to ask the bucket for at once: about ``RUN_SECONDS`` of sending."""
        return max(1, math.ceil(self.bucket.rate * RUN_SECONDS))


def campaign_send_turn(*, campaign_id: int, fan_out: Callable[[], object]) -> bool:
    """Send in one of the campaign's slots for up to ``TURN_SECONDS``; True while more is due.

    ``send_slots`` slots (leases in the database) bound how many workers send for
    one campaign at once; a duplicate task finds every slot taken,
    and a campaign with nothing due (completed, paused, waiting for a retry time) has
    no turn. ``fan_out`` queues another turn when a slot is still free. Between slices
    the lease is renewed: the turn goes on without handing its slot back through the
    broker (each hand-over left the slot empty for a moment).
    """
    if not campaign_sends_due(campaign_id):
        return False
    holder, slots = uuid.uuid4().hex, send_slots(campaign_id)
    key = send_slot_take(campaign_id=campaign_id, holder=holder, slots=slots)
    if key is None:
        return False
    if send_slot_free(campaign_id=campaign_id, slots=slots):
        fan_out()
    until = time.monotonic() + TURN_SECONDS
    try:
        while True:
            result = campaign_send_batch(campaign_id=campaign_id, max_seconds=SLICE_SECONDS)
            if (result.stopped or time.monotonic() + SLICE_SECONDS > until
                    or not campaign_sends_due(campaign_id)
                    or not lease_acquire(key=key, holder=holder, seconds=LEASE_SECONDS)):
                break
    finally:
        lease_release(key=key, holder=holder)
    return not result.stopped and campaign_sends_due(campaign_id)


def campaign_send_batch(*, campaign_id: int, max_seconds: float = 20.0,
                        backend: BaseBackend | None = None) -> LoopResult:
    """Send due messages of one campaign for up to ``max_seconds``; safe to run in parallel.

    Returns when the time is up, nothing is due, or a guard stops it (the
    campaign stopped sending, quiet hours, the number stopped, the daily
    limit). Several workers may run it for the same campaign at once: each
    send is claimed by exactly one of them.
    """
    result = LoopResult()
    deadline = time.monotonic() + max_seconds
    campaign = Campaign.objects.select_related("template").get(pk=campaign_id)
    bucket = get_bucket(campaign.sender_id, campaign.rate_per_second)
    loop = Loop(campaign=campaign, templates=campaign_templates(campaign), bucket=bucket,
                backend=backend or get_backend(phone_number_id=campaign.phone_number_id or None),
                batch=max(1, min(BATCH_MAX, int(bucket.rate // 4) or 1)))
    loop.threads = _threads(loop)
    if loop.threads > 1:
        loop.pool = ThreadPoolExecutor(loop.threads, thread_name_prefix=f"send-{campaign_id}")
    _relaxed_commits(True)
    SEND_RATE_CONFIGURED.labels(sender=campaign.sender_id).set(bucket.rate)
    try:
        while time.monotonic() < deadline and not result.stopped:
            result.stopped = batch_guard(loop)
            if result.stopped:
                break
            token, claimed = _claim(campaign_id, loop.limit, timezone.now())
            if not claimed:
                break
            _send_claimed(loop, token, claimed, result)
    finally:
        _relaxed_commits(False)
        SEND_RATE.labels(sender=campaign.sender_id).set(0)
        SEND_RATE_CONFIGURED.labels(sender=campaign.sender_id).set(0)
        if loop.pool:
            loop.pool.shutdown()
        if backend is None:
            loop.backend.close()
        if result.sent:  # the rate limiter answers (again)
            Campaign.objects.filter(pk=campaign_id, status_message=limiter_down_note()
                                    ).update(status_message="")
        campaign_finish_if_done(campaign_id=campaign_id)
    return result


def _threads(loop: Loop) -> int:
    """Requests in flight at once: enough for 40 ms per request at the number's rate.

    Only for backends that say they are thread-safe and keep off the database
    (``concurrent``); the others send one message at a time, as before.
    """
    if not getattr(loop.backend, "concurrent", False):
        return 1
    return max(2, min(settings.WHATSAPP_SEND_THREADS, math.ceil(loop.bucket.rate / 25)))


def _send_claimed(loop: Loop, token: uuid.UUID, claimed: list[Send],
                  result: LoopResult) -> None:
    """Guard, send and record the claimed sends; give back the rest when the loop stops.

    Sends are guarded in order, then handed over in runs: one reservation of a
    run's slots (each request its own slot), one UPDATE stamping them handed,
    each request posted at its slot, the outcomes recorded in bulk.
    """
    flight = Flight(loop, token, result)
    todo, ready = deque(claimed), []
    loop.erased = numbers_erased(s.phone for s in claimed)
    try:
        while (todo or ready or flight.late) and not result.stopped:
            while todo and len(ready) < loop.run:
                verdict = send_guard(loop, todo[0], token, len(claimed) - len(todo))
                if verdict == HALT:
                    result.stopped = "campaign not sending"
                    break
                send = todo.popleft()
                if verdict:
                    setattr(result, verdict, getattr(result, verdict) + 1)
                else:
                    ready.append(send)
            if (ready or flight.late) and not result.stopped:
                ready = flight.dispatch(ready)
    finally:
        flight.finish()
        if result.stopped:
            _release(token, [s.pk for s in [*ready, *todo]])


@dataclass
class Posted:
    """What became of one request: exactly one of the fields besides ``send`` is set."""

    send: Send
    sent: SendResult | None = None
    error: WhatsAppError | None = None
    ambiguous: str = ""
    unposted: bool = False  # its slot had passed, or sending stopped meanwhile
    crash: BaseException | None = None


def _post(loop: Loop, send: Send, message: TemplateMessage, due: float,
          stop: threading.Event) -> Posted:
    """Post one message at its slot (``due``, monotonic); runs in the loop's pool.

    Only HTTP here, no database: the main thread records. A request that would go
    out more than ``LATE`` after its slot is not posted (it would land next to the
    following ones and push a 1-second window over the limit): it gets a fresh slot.
    Nor is one after a refusal that stops sending (131048, 368, a refused template):
    only requests already on their way finish.
    """
    if (delay := due - time.monotonic()) > 0:
        time.sleep(delay)
    if stop.is_set() or time.monotonic() - due > LATE:
        return Posted(send, unposted=True)
    try:
        return Posted(send, sent=loop.backend.send_template(
            to=send.phone, template=message, callback_data=f"tw:{send.pk}"))
    except AmbiguousSendError as exc:
        return Posted(send, ambiguous=str(exc))
    except WhatsAppError as error:
        if POLICIES[error.action].stops_sending:
            stop.set()
        return Posted(send, error=error)
    except BaseException as exc:  # re-raised by the main thread, after the others
        return Posted(send, crash=exc)


class Flight:
    """The requests of one claim on their way: posted at their slots, recorded in bulk."""

    def __init__(self, loop: Loop, token: uuid.UUID, result: LoopResult):
        self.loop, self.token, self.result = loop, token, result
        self.done: queue.SimpleQueue[Posted] = queue.SimpleQueue()
        self.inflight = 0
        self.sent: list[tuple[int, str]] = []
        self.late: list[Send] = []  # not posted; a fresh slot is due (or the claim ends)
        self.handed: set[int] = set()  # ids stamped handed (``claims_hand``)
        self.stop = threading.Event()
        self.crash: BaseException | None = None

    def dispatch(self, ready: list[Send]) -> list[Send]:
        """Stamp the first of ``ready`` handed, reserve their slots, post each at its slot;
        return the sends still waiting for a slot."""
        ready, self.late = [*self.late, *ready], []
        # No more slots at once than threads to post them, and only once one is free: a
        # slot that passes while its request waits for a thread is lost to everyone.
        self._make_room()
        if self.result.stopped:
            return ready
        want = min(len(ready), self.loop.run, self.loop.window)
        # Stamped before the slots are reserved: the UPDATE's round trip never delays
        # a reserved slot (a stamp a little early only means the slower, safe path).
        ready = self._hand(ready, want)
        if not ready:
            return ready
        try:
            waits = self.loop.bucket.reserve_many(min(len(ready), want))
        except RateLimiterUnavailable as exc:
            self._limiter_down(exc)
            return ready
        if waits[0] < 0:
            self.wait_until(time.monotonic() + busy_wait(waits[0]))
            return ready
        start = time.monotonic()
        run, rest = ready[:len(waits)], ready[len(waits):]
        unposted = []
        for send, wait in zip(run, waits, strict=False):
            if not self.result.stopped:
                self.wait_until(start + wait - SUBMIT_AHEAD)
                self._make_room()
            if self.result.stopped:
                unposted.append(send.pk)
            else:
                self._submit(send, start + wait)
        if unposted:
            _release(self.token, unposted)  # never posted: safe to queue again
        self._record(final=False)
        return rest

    def _hand(self, ready: list[Send], count: int) -> list[Send]:
        """Stamp the first ``count`` of ``ready`` handed (those not stamped yet), dropping
        any whose claim was given back while this loop waited; return what is left."""
        while ids := [s.pk for s in ready[:count] if s.pk not in self.handed]:
            handed = claims_hand(self.token, ids)
            self.handed |= handed
            if lost := set(ids) - handed:
                self.result.retried += len(lost)
                ready = [s for s in ready if s.pk not in lost]
        return ready

    def _submit(self, send: Send, due: float) -> None:
        template = self.loop.templates.get(send.variant) or self.loop.campaign.template
        message = message_for(template, send.contact, send.pk)
        self.inflight += 1
        if self.loop.pool is None:
            self._apply(_post(self.loop, send, message, due, self.stop))
            self.inflight -= 1
        else:
            future = self.loop.pool.submit(_post, self.loop, send, message, due, self.stop)
            future.add_done_callback(lambda f: self.done.put(f.result()))

    def _make_room(self) -> None:
        """Wait while the window of requests in flight is full.

        The window starts at one request per loop and doubles with each accepted
        one, up to the pool's size (TCP's slow start), and stays open for the loop's
        next claims: a first request refused with an error that stops sending (131048,
        368, a refused template) has no others on their way, and the pool's queue
        never holds requests bound to be late.
        """
        while self.inflight >= self.loop.window:
            self._take(self.done.get(timeout=HTTP_WAIT))

    def _take(self, posted: Posted) -> None:
        self.inflight -= 1
        self._apply(posted)

    def wait_until(self, at: float) -> None:
        """Apply outcomes as they come in until ``at`` (monotonic)."""
        while (left := at - time.monotonic()) > 0:
            try:
                self._take(self.done.get(timeout=left))
            except queue.Empty:
                return

    def finish(self) -> None:
        """Wait for the requests in flight, record everything, re-raise a crash."""
        while self.inflight:
            try:
                self._take(self.done.get(timeout=HTTP_WAIT))
            except queue.Empty:  # left in flight: the reconciler's grace path takes them
                logger.error("campaign %s: %d requests did not return", self.loop.campaign.pk,
                             self.inflight)
                break
        self._record(final=True)
        if self.late:  # never posted, and this claim is over: queued again at once
            _release(self.token, [s.pk for s in self.late])
            self.result.retried += 0 if self.result.stopped else len(self.late)
            self.late = []
        if self.crash is not None:
            raise self.crash

    def _apply(self, posted: Posted) -> None:
        send, result = posted.send, self.result
        if posted.sent is not None:
            self.sent.append((send.pk, posted.sent.wamid))
            result.sent += 1
            _sent_count(self.loop)
            self.loop.window = min(self.loop.window * 2, self.loop.threads)
        elif posted.unposted:
            self.late.append(send)
        elif posted.ambiguous:
            # Leave it in flight: a webhook adopts it, or the reconciler requeues it.
            Send.objects.filter(pk=send.pk).update(error_detail=posted.ambiguous[:500])
            SENDS.labels(status="ambiguous", error_code="").inc()
            result.retried += 1
        elif posted.error is not None:
            outcome = _refused(self.loop, send, self.token, posted.error)
            if outcome == "stopped":
                result.stopped = "error"
                self.stop.set()
            else:
                setattr(result, outcome, getattr(result, outcome) + 1)
        else:  # left in flight, as if the worker had died during the request
            self.crash, result.stopped = posted.crash, "error"
            self.stop.set()

    def _record(self, *, final: bool) -> None:
        if self.sent and (final or len(self.sent) >= RECORD_EVERY):
            sends_record_sent(token=self.token, sent=self.sent)
            self.sent = []

    def _limiter_down(self, exc: RateLimiterUnavailable) -> None:
        logger.warning("campaign %s waits: rate limiter unreachable (%s)", self.loop.campaign.pk,
                       exc)
        Campaign.objects.filter(pk=self.loop.campaign.pk).update(
            status_message=limiter_down_note())
        self.result.stopped = "rate limiter unavailable"


def _sent_count(loop: Loop) -> None:
    """Count one accepted message; the loop's achieved rate since it started."""
    SENDS.labels(status="sent", error_code="").inc()
    loop.sent += 1
    elapsed = max(time.monotonic() - loop.started, 1.0)  # no spike from the first message
    SEND_RATE.labels(sender=loop.campaign.sender_id).set(loop.sent / elapsed)


# --- Guards --------------------------------------------------------------------------------
# Before each batch: each guard returns why the loop stops ("" to go on).

def campaign_not_sending(loop: Loop) -> str:
    status = Campaign.objects.filter(pk=loop.campaign.pk).values_list("status", flat=True)
    return "" if status.first() == CampaignStatus.SENDING else "campaign not sending"


def quiet_hours_now(loop: Loop) -> str:
    # The sends stay queued; the first tick after the quiet hours dispatches them.
    return "quiet hours" if quiet_until(loop.campaign) else ""


def sender_stopped(loop: Loop) -> str:
    reason = Sender.objects.filter(phone_number_id=loop.campaign.sender_id, stopped=True
                                   ).values_list("stopped_reason", flat=True).first()
    return "" if reason is None else reason or "sending number stopped"


def daily_limit_reached(loop: Loop) -> str:
    """Claim no more than the unique recipients left today (``WHATSAPP_DAILY_UNIQUE_LIMIT``)."""
    budget = daily_budget_left(loop.campaign.sender_id)
    loop.limit = loop.batch if budget is None else min(loop.batch, budget)
    if loop.limit > 0:
        return ""
    Campaign.objects.filter(pk=loop.campaign.pk).update(status_message=_(
        "Daily messaging limit reached (WHATSAPP_DAILY_UNIQUE_LIMIT); sending continues as "
        "the rolling 24 hours free up."))
    return "daily limit"


BATCH_GUARDS: tuple[Callable[[Loop], str], ...] = (
    campaign_not_sending, quiet_hours_now, sender_stopped, daily_limit_reached)


def batch_guard(loop: Loop) -> str:
    """The first reason not to claim another batch; "" when sending may go on."""
    return next((reason for guard in BATCH_GUARDS if (reason := guard(loop))), "")


# Before each claimed send: a guard returns "" to go on, an outcome to count instead
# of sending ("skipped", "retried"), or HALT.

def campaign_stopped(loop: Loop, send: Send, token: uuid.UUID, index: int) -> str:
    """Paused or cancelled meanwhile? Asked every 10 sends (a query each time)."""
    if index and index % 10 == 0 and Campaign.objects.filter(
            pk=loop.campaign.pk).exclude(status=CampaignStatus.SENDING).exists():
        return HALT
    return ""


def recipient_unreachable(loop: Loop, send: Send, token: uuid.UUID, index: int) -> str:
    """Opted out, blocklisted or without consent since launch: cancelled, never sent.

    The launch applied the same rules (``campaigns.audience``); a contact can
    change while the campaign sends, or while a limited send waits a day.
    """
    reason = unreachable_reason(send.contact, marketing=loop.marketing)
    if not reason:
        return ""
    Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
        status=SendStatus.CANCELLED, claim=None, error_detail=f"not sent: {reason}")
    SENDS.labels(status="skipped", error_code="").inc()
    return "skipped"


def number_erased_guard(loop: Loop, send: Send, token: uuid.UUID, index: int) -> str:
    """A number erased on request (its salted hash is kept) is never messaged again, even
    when it came back as a new contact (docs/privacy.md). Looked up once per claim."""
    erased = loop.erased if loop.erased is not None else numbers_erased([send.phone])
    if send.phone and send.phone not in erased:
        return ""
    Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
        status=SendStatus.CANCELLED, claim=None, error_detail="not sent: erased on request")
    return "skipped"


SEND_GUARDS: tuple[Callable[[Loop, Send, uuid.UUID, int], str], ...] = (
    campaign_stopped, recipient_unreachable, number_erased_guard)


def send_guard(loop: Loop, send: Send, token: uuid.UUID, index: int) -> str:
    """The first guard's verdict on one claimed send; "" when it may be sent."""
    return next((verdict for guard in SEND_GUARDS
                 if (verdict := guard(loop, send, token, index))), "")


def claims_hand(token: uuid.UUID, ids: list[int]) -> set[int]:
    """Stamp sends handed to WhatsApp, where the claim is still ours; return their ids.

    Run for a run of sends right after their slots were reserved, before the first
    request: the reconciler queues again at once a claimed send without this stamp
    (it never left us), and one with it only after the grace period (it may have
    reached WhatsApp). Conditional on the claim, so a send the reconciler gave back
    meanwhile is not sent by this loop. A stamp a little early only ever sends a
    send down the slower, safe path.
    """
    now = timezone.now()
    rows = Send.objects.filter(pk__in=ids, claim=token, status=SendStatus.SENDING)
    if rows.update(handed_at=now) == len(ids):
        return set(ids)
    # Stamped rows stay ours: the reconciler gives back only sends without the stamp.
    return set(rows.filter(handed_at=now).values_list("pk", flat=True))


def claim_hand(send: Send, token: uuid.UUID) -> bool:
    """``claims_hand`` for one send: True when it was stamped."""
    return send.pk in claims_hand(token, [send.pk])


def sends_record_sent(*, token: uuid.UUID, sent: list[tuple[int, str]]) -> None:
    """Record accepted sends (id, wamid) in one UPDATE, conditional on the claim."""
    now = timezone.now()
    ids = [pk for pk, _wamid in sent]
    if connection.vendor == "postgresql":
        recorded = _record_sent_pg(token, sent, now)
    else:
        recorded = Send.objects.filter(pk__in=ids, claim=token, status=SendStatus.SENDING
                                       ).update(status=SendStatus.SENT, wamid=_wamids(sent),
                                                sent_at=now, claim=None)
    if recorded < len(ids):
        # A webhook got here first (it found them by callback data): keep its status.
        Send.objects.filter(pk__in=ids, wamid="").update(wamid=_wamids(sent), sent_at=now)


def _wamids(sent: list[tuple[int, str]]) -> Case:
    return Case(*(When(pk=pk, then=Value(wamid)) for pk, wamid in sent),
                output_field=CharField())


def _record_sent_pg(token: uuid.UUID, sent: list[tuple[int, str]], now: datetime) -> int:
    """``sends_record_sent``'s UPDATE joined to two arrays: the send loop records a hundred
    sends in well under a millisecond of Python, where the CASE above takes tens."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_send SET status = %s, wamid = v.wamid, sent_at = %s, claim = NULL"
            " FROM unnest(%s::bigint[], %s::text[]) AS v(id, wamid)"
            " WHERE campaigns_send.id = v.id AND claim = %s AND status = %s",
            [SendStatus.SENT, now, [pk for pk, _ in sent], [w for _, w in sent], token,
             SendStatus.SENDING])
        return cursor.rowcount


def limiter_down_note() -> str:
    return _("Sending waits: the rate limiter (Redis) cannot be reached, and sending without "
             "it could exceed WhatsApp's limit for the number. Sending resumes by itself once "
             "Redis answers again.")


# --- Refusals: the error table applied ------------------------------------------------------

def _refused(loop: Loop, send: Send, token: uuid.UUID, error: WhatsAppError) -> str:
    """Apply ``campaigns.errors.POLICIES`` to one refused send; return the loop's outcome."""
    policy = POLICIES[error.action]
    outcome = FATES[policy.fate](loop, send, token, error, policy)
    SENDS.labels(status=outcome, error_code=code_label(error.code)).inc()
    error_consequences_apply(campaign=loop.campaign, send=send, error=error)
    return "stopped" if policy.stops_sending else outcome


def _retry(loop: Loop, send: Send, token: uuid.UUID, error: WhatsAppError,
           policy: Policy) -> str:
    if send.attempts >= policy.tries:  # ``attempts`` already counts this one
        return _fail_send(loop, send, token, error, policy)
    try:
        if policy.slows:
            loop.bucket.refused()
        if policy.pause:
            loop.bucket.pause(policy.pause)
    except RateLimiterUnavailable as exc:  # the next slot will halt the loop
        logger.warning("could not slow the number down: %s", exc)
    _requeue(send, token, policy.delay(send.attempts), error)
    return "retried"


def _fail_send(loop: Loop, send: Send, token: uuid.UUID, error: WhatsAppError,
               policy: Policy) -> str:
    _fail(send, token, error)
    return "failed"


def _defer(loop: Loop, send: Send, token: uuid.UUID, error: WhatsAppError,
           policy: Policy) -> str:
    return send_defer(send_id=send.pk, error=error, token=token) or "retried"


def _hold(loop: Loop, send: Send, token: uuid.UUID, error: WhatsAppError,
          policy: Policy) -> str:
    _requeue(send, token, 0, error)
    return "retried"


FATES: dict[SendFate, Callable[[Loop, Send, uuid.UUID, WhatsAppError, Policy], str]] = {
    SendFate.RETRY: _retry, SendFate.FAIL: _fail_send, SendFate.DEFER: _defer,
    SendFate.HOLD: _hold}


def _opt_out(campaign: Campaign, send: Send, error: WhatsAppError) -> None:
    contact_opt_out(contact=send.contact, source=f"error_{error.code}", detail=error.message)


def _pause(campaign: Campaign, send: Send, error: WhatsAppError) -> None:
    message = _(
        "Paused: WhatsApp limits this number (error %(code)s, “%(title)s”). Check the "
        "quality rating and messaging limit in WhatsApp Manager, then resume in a few "
        "hours.") % {"code": error.code, "title": error.message}
    campaign_pause(campaign=campaign, reason=message)
    Alert.objects.create(campaign=campaign, code=error.code, message=message)


def _abort(campaign: Campaign, send: Send, error: WhatsAppError) -> None:
    campaign_abort(campaign_id=campaign.pk, code=error.code, message=_(
        "Aborted: WhatsApp refused the template “%(name)s” (%(lang)s) with error "
        "%(code)s (“%(title)s”). Every recipient would fail. Check the template name, "
        "language and approval in WhatsApp Manager, and that the variables match its "
        "placeholders; then create a new campaign.") % {
            "name": campaign.template.name, "lang": campaign.template.language,
            "code": error.code, "title": error.message})


def _stop_sender(campaign: Campaign, send: Send, error: WhatsAppError) -> None:
    sender_stop(phone_number_id=campaign.sender_id, code=error.code, reason=_(
        "All sending stopped: WhatsApp error %(code)s (“%(title)s”). Resolve it in WhatsApp "
        "Manager / Business Support, then resume the sending number in the admin.")
        % {"code": error.code, "title": error.message})


CONSEQUENCES: dict[Consequence, Callable[[Campaign, Send, WhatsAppError], None]] = {
    Consequence.OPT_OUT: _opt_out, Consequence.PAUSE: _pause, Consequence.ABORT: _abort,
    Consequence.STOP_SENDER: _stop_sender}


def error_consequences_apply(*, campaign: Campaign, send: Send, error: WhatsAppError) -> None:
    """Do what the error table says beyond the send: opt out, pause, abort, stop the number.

    The same for a refused call and for a failed status webhook.
    """
    then = POLICIES[error.action].then
    if then:
        CONSEQUENCES[then](campaign, send, error)


# --- Writes on claimed sends -------------------------------------------------------------

def _claim(campaign_id: int, limit: int, now: datetime) -> tuple[uuid.UUID, list[Send]]:
    token = uuid.uuid4()
    due = due_sends(campaign_id, now).order_by("id")
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO ON")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        if ids:
            Send.objects.filter(id__in=ids, status=SendStatus.QUEUED).update(
                status=SendStatus.SENDING, claim=token, claimed_at=now,
                attempts=F("attempts") + 1)
    if not ids:
        return token, []
    # By id: ``claim`` has no index, and the table holds every campaign's sends.
    return token, list(Send.objects.filter(id__in=ids, claim=token).select_related("contact")
                       .order_by("id"))


def _release(token: uuid.UUID, ids: list[int]) -> None:
    """Give back claimed sends that were not attempted (cancelled with their campaign)."""
    rows = Send.objects.filter(id__in=ids, claim=token, status=SendStatus.SENDING)
    finished = Campaign.objects.filter(
        pk=OuterRef("campaign_id"), status__in=[CampaignStatus.CANCELLED, CampaignStatus.ABORTED])
    rows.filter(Exists(finished)).update(status=SendStatus.CANCELLED, claim=None,
                                         handed_at=None, attempts=F("attempts") - 1)
    rows.update(status=SendStatus.QUEUED, claim=None, claimed_at=None, handed_at=None,
                attempts=F("attempts") - 1)


def _requeue(send: Send, token: uuid.UUID, delay: float, error: WhatsAppError) -> None:
    Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
        status=SendStatus.QUEUED, claim=None, handed_at=None,
        not_before=timezone.now() + timedelta(seconds=delay),
        error_code=error.code, error_detail=str(error)[:500])


def _fail(send: Send, token: uuid.UUID, error: WhatsAppError) -> None:
    Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
        status=SendStatus.FAILED, claim=None, failed_at=timezone.now(),
        error_code=error.code, error_detail=str(error)[:500])


def send_defer(*, send_id: int, error: WhatsAppError, token: uuid.UUID | None = None,
               statuses: list[str] | None = None, now: datetime | None = None) -> str:
    """WhatsApp limited this recipient (131049): retry hours later, or fail after N tries.

    The send becomes *limited* with ``not_before`` = now + ``CAMPAIGNS_LIMITED_RETRY_HOURS``
    (24), doubled per earlier deferral; beat's tick queues it again when due (no long
    countdown). After ``CAMPAIGNS_LIMITED_RETRIES`` (2) deferrals the next 131049 fails it.
    Returns "deferred", "failed", or "" when the send was not in ``statuses``.
    """
    now = now or timezone.now()
    rows = Send.objects.filter(pk=send_id)
    if token:
        rows = rows.filter(claim=token, status=SendStatus.SENDING)
    elif statuses:
        rows = rows.filter(status__in=statuses)
    detail = str(error)[:500]
    done = rows.values_list("deferrals", flat=True).first() or 0
    # Increasing intervals (24 h, 48 h, …): Meta's limit lasts for differing periods.
    wait = timedelta(hours=settings.CAMPAIGNS_LIMITED_RETRY_HOURS * 2 ** done)
    if rows.filter(deferrals__lt=settings.CAMPAIGNS_LIMITED_RETRIES).update(
            status=SendStatus.LIMITED, claim=None, error_code=error.code, error_detail=detail,
            deferrals=F("deferrals") + 1, not_before=now + wait):
        # A webhook may report it after the campaign finished: it sends again for this one.
        Campaign.objects.filter(sends__pk=send_id, status=CampaignStatus.COMPLETED).update(
            status=CampaignStatus.SENDING, finished_at=None)
        return "deferred"
    if rows.update(status=SendStatus.FAILED, claim=None, failed_at=now, error_code=error.code,
                   error_detail=detail):
        return "failed"
    return ""


def _relaxed_commits(on: bool) -> None:
    """Let the send loop's own writes commit without waiting for the WAL flush (PostgreSQL).

    A killed *worker* loses nothing this way (each commit is already in the
    server). If the *database server* crashes, the last fraction of a second
    of stamps, "sent" and retry writes can be lost: those sends fall back to
    "in flight", which the reconciler handles (claims from before the server's
    restart count as handed over, whatever their stamp says). Claims are committed
    durably (``SET LOCAL synchronous_commit TO ON``): they prevent a second message.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO " + ("OFF" if on else "DEFAULT"))


# --- The queue's upkeep (run by beat's tick) --------------------------------------------

def inflight_reconcile(*, now: datetime | None = None, grace: float | None = None) -> int:
    """Queue again sends stuck in flight; return how many.

    A send claimed by a loop that has not handed it to WhatsApp within a lease
    (``LEASE_SECONDS``) never left us — its worker died, or the loop gave up on it —
    and is queued again at once. A send handed over but without an answer may have
    reached WhatsApp: it waits for the status webhook that adopts it, and only after
    the grace period is presumed never accepted. Not while stored webhooks older than
    a few seconds wait to be applied: the "sent" that adopts it may be among them (a
    backlog after a burst or a worker outage must not turn into duplicates).
    """
    now = now or timezone.now()
    grace = grace if grace is not None else settings.WHATSAPP_INFLIGHT_GRACE_SECONDS
    abandoned = Send.objects.filter(status=SendStatus.SENDING, handed_at__isnull=True,
                                    wamid="", claimed_at__lt=now - timedelta(
                                        seconds=LEASE_SECONDS))
    if (restart := _database_started()) is not None:
        # The "handed" stamp commits without waiting for the disk (_relaxed_commits): a
        # server crash can lose it. Claims from before the restart take the grace path.
        abandoned = abandoned.filter(claimed_at__gt=restart)
    count = abandoned.update(status=SendStatus.QUEUED, claim=None, claimed_at=None,
                             attempts=Greatest(F("attempts") - 1, 0))
    if count:
        logger.warning("requeued %d sends claimed by a loop that stopped before sending", count)
    if WebhookDelivery.objects.filter(processed_at__isnull=True,
                                      received_at__lt=now - timedelta(seconds=5)).exists():
        return count
    stuck = Send.objects.alias(since=Coalesce("handed_at", "claimed_at")).filter(
        status=SendStatus.SENDING, wamid="", since__lt=now - timedelta(seconds=grace))
    requeued = stuck.update(status=SendStatus.QUEUED, claim=None, claimed_at=None,
                            handed_at=None)
    if requeued:
        logger.warning("requeued %d sends in flight with no answer for over %ss", requeued,
                       grace)
    return count + requeued


def _database_started() -> datetime | None:
    """When the PostgreSQL server last started (None on other databases)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        return cursor.fetchone()[0]


def limited_requeue(*, now: datetime | None = None) -> int:
    """Queue again limited sends whose retry time has come (campaigns still sending)."""
    now = now or timezone.now()
    return Send.objects.filter(status=SendStatus.LIMITED, not_before__lte=now,
                               campaign__status=CampaignStatus.SENDING).update(
        status=SendStatus.QUEUED, wamid="", claim=None, claimed_at=None, handed_at=None,
        attempts=0, not_before=None)


# --- Sending slots: how many loops run for one campaign at once --------------------------

def lease_acquire(*, key: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease ``key`` for ``holder``; False when someone else holds it."""
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    Lease.objects.get_or_create(key=key, defaults={"expires_at": now - timedelta(seconds=1)})
    return bool(Lease.objects.filter(key=key).filter(
        Q(expires_at__lt=now) | Q(holder=holder)).update(holder=holder, expires_at=until))


def lease_release(*, key: str, holder: str) -> None:
    Lease.objects.filter(key=key, holder=holder).update(
        holder="", expires_at=timezone.now() - timedelta(seconds=1))


RATE_PER_SLOT = 250  # msg/s one send loop keeps up with, with room for its database stalls


def send_slots(campaign_id: int) -> int:
    """How many loops may send for a campaign at once: one per ``RATE_PER_SLOT`` of its
    rate, at least 2, at most ``WHATSAPP_SEND_CONCURRENCY``."""
    rate = Campaign.objects.filter(pk=campaign_id).values_list("rate_per_second", flat=True
                                                               ).first()
    wanted = max(2, math.ceil((rate or settings.WHATSAPP_MAX_MPS) / RATE_PER_SLOT))
    return max(1, min(settings.WHATSAPP_SEND_CONCURRENCY, wanted))


def send_slot_take(*, campaign_id: int, holder: str, slots: int) -> str | None:
    """Take one of the campaign's ``slots`` slots: its key, or None."""
    keys = (f"send:{campaign_id}:{slot}" for slot in range(slots))
    return next((key for key in keys
                 if lease_acquire(key=key, holder=holder, seconds=LEASE_SECONDS)), None)


def send_slot_free(*, campaign_id: int, slots: int) -> bool:
    """True when another loop could take one of the campaign's ``slots`` slots now."""
    taken = Lease.objects.filter(key__startswith=f"send:{campaign_id}:",
                                 expires_at__gt=timezone.now()).count()
    return taken < slots
