"""The send loop: claim due sends, guard, send, record; the error table applied to refusals.

Exactly once, in one paragraph: a send is *claimed* (``queued → sending`` in
one conditional UPDATE, ``SKIP LOCKED`` on PostgreSQL) before its network
call, stamped *handed* (``handed_at``, again conditional on the claim) the
moment its rate slot has come, and its outcome is written with another
conditional UPDATE; the call runs outside any transaction. A claimed send is
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
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.audience import unreachable_reason
from campaigns.backends import AmbiguousSendError, BaseBackend, WhatsAppError, get_backend
from campaigns.content import message_for
from campaigns.errors import POLICIES, Consequence, Policy, SendFate
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
from campaigns.selectors import campaign_templates, daily_budget_left, due_sends
from campaigns.services import (
    campaign_abort,
    campaign_finish_if_done,
    campaign_pause,
    contact_opt_out,
    sender_stop,
)
from campaigns.throttle import Bucket, RateLimiterUnavailable, get_bucket

logger = logging.getLogger(__name__)

# A slice of sending fits well inside its lease; a worker killed mid-slice frees
# its slot, and the sends it claimed but never handed over, when the lease runs out.
SLICE_SECONDS, LEASE_SECONDS = 10, 15
HALT = "halt"  # a guard's verdict: stop the loop and give back what is claimed


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

    @property
    def marketing(self) -> bool:
        return self.campaign.template.category == TemplateCategory.MARKETING


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
                batch=max(1, min(50, int(bucket.rate // 4) or 1)))
    _relaxed_commits(True)
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
        if backend is None:
            loop.backend.close()
        if result.sent:  # the rate limiter answers (again)
            Campaign.objects.filter(pk=campaign_id, status_message=limiter_down_note()
                                    ).update(status_message="")
        campaign_finish_if_done(campaign_id=campaign_id)
    return result


def _send_claimed(loop: Loop, token: uuid.UUID, claimed: list[Send],
                  result: LoopResult) -> None:
    """Guard, send and record each claimed send; give back the rest when the loop stops."""
    for index, send in enumerate(claimed):
        verdict = send_guard(loop, send, token, index)
        if verdict == HALT:
            _release(token, [s.pk for s in claimed[index:]])
            result.stopped = "campaign not sending"
            return
        outcome = verdict or _send_one(loop, send, token)
        if outcome == HALT:
            _release(token, [s.pk for s in claimed[index:]])
            result.stopped = "rate limiter unavailable"
            return
        if outcome == "stopped":
            _release(token, [s.pk for s in claimed[index + 1:]])
            result.stopped = "error"
            return
        setattr(result, outcome, getattr(result, outcome) + 1)


def _send_one(loop: Loop, send: Send, token: uuid.UUID) -> str:
    """Send one guarded send and record the outcome: sent, retried, failed, deferred,
    stopped, or HALT when the rate limiter cannot be reached (nothing was sent)."""
    template = loop.templates.get(send.variant) or loop.campaign.template
    message = message_for(template, send.contact)
    try:
        if not loop.bucket.acquire(ready=partial(claim_hand, send, token)):
            return "retried"  # the claim was given back while this loop waited
    except RateLimiterUnavailable as exc:
        logger.warning("campaign %s waits: rate limiter unreachable (%s)", loop.campaign.pk,
                       exc)
        Campaign.objects.filter(pk=loop.campaign.pk).update(status_message=limiter_down_note())
        return HALT
    try:
        sent = loop.backend.send_template(to=send.phone, template=message,
                                          callback_data=f"tw:{send.pk}")
    except AmbiguousSendError as exc:
        # Leave it in flight: a webhook adopts it, or the reconciler requeues it.
        Send.objects.filter(pk=send.pk).update(error_detail=str(exc)[:500])
        return "retried"
    except WhatsAppError as error:
        return _refused(loop, send, token, error)
    now = timezone.now()
    if not Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
            status=SendStatus.SENT, wamid=sent.wamid, sent_at=now, claim=None):
        # A webhook got here first (it found us by callback data): keep its status.
        Send.objects.filter(pk=send.pk, wamid="").update(wamid=sent.wamid, sent_at=now)
    return "sent"


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
    return "skipped"


SEND_GUARDS: tuple[Callable[[Loop, Send, uuid.UUID, int], str], ...] = (
    campaign_stopped, recipient_unreachable)


def send_guard(loop: Loop, send: Send, token: uuid.UUID, index: int) -> str:
    """The first guard's verdict on one claimed send; "" when it may be sent."""
    return next((verdict for guard in SEND_GUARDS
                 if (verdict := guard(loop, send, token, index))), "")


def claim_hand(send: Send, token: uuid.UUID) -> bool:
    """Stamp the send handed to WhatsApp, if the claim is still ours; False when it is not.

    Run when the send's rate slot has come (``Bucket.acquire``), right before the
    request: the reconciler queues again at once a claimed send without this stamp
    (it never left us), and one with it only after the grace period (it may have
    reached WhatsApp). Conditional on the claim, so a send the reconciler gave back
    meanwhile is not sent by this loop.
    """
    return bool(Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING)
                .update(handed_at=timezone.now()))


def limiter_down_note() -> str:
    return _("Sending waits: the rate limiter (Redis) cannot be reached, and sending without "
             "it could exceed WhatsApp's limit for the number. Sending resumes by itself once "
             "Redis answers again.")


# --- Refusals: the error table applied ------------------------------------------------------

def _refused(loop: Loop, send: Send, token: uuid.UUID, error: WhatsAppError) -> str:
    """Apply ``campaigns.errors.POLICIES`` to one refused send; return the loop's outcome."""
    policy = POLICIES[error.action]
    outcome = FATES[policy.fate](loop, send, token, error, policy)
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
    return token, list(Send.objects.filter(claim=token).select_related("contact"))


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


def send_slot_take(*, campaign_id: int, holder: str) -> str | None:
    """Take one of the campaign's ``WHATSAPP_SEND_CONCURRENCY`` slots: its key, or None."""
    keys = (f"send:{campaign_id}:{slot}" for slot in range(settings.WHATSAPP_SEND_CONCURRENCY))
    return next((key for key in keys
                 if lease_acquire(key=key, holder=holder, seconds=LEASE_SECONDS)), None)


def send_slot_free(*, campaign_id: int) -> bool:
    """True when another loop could take a slot of this campaign now."""
    taken = Lease.objects.filter(key__startswith=f"send:{campaign_id}:",
                                 expires_at__gt=timezone.now()).count()
    return taken < settings.WHATSAPP_SEND_CONCURRENCY
