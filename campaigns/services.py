"""Writes for campaigns: launch (checks + snapshot), the send loop, pause/resume/cancel.

Exactly once, in one paragraph: a send is *claimed* (``queued → sending`` in
one conditional UPDATE, ``SKIP LOCKED`` on PostgreSQL) before its network
call, the call runs outside any transaction, and its outcome is written with
another conditional UPDATE. A claimed send is never claimed again, so no
recipient can get two messages from two workers. A worker killed after the
claim leaves the send "in flight": a status webhook carrying its callback data
(``biz_opaque_callback_data``) adopts it; if none arrives within
``WHATSAPP_INFLIGHT_GRACE_SECONDS`` the API is presumed never to have accepted
it and it is queued again. The remaining window is documented in
docs/campaigns.md.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.backends import (
    Action,
    AmbiguousSendError,
    SendResult,
    WhatsAppError,
    get_backend,
)
from campaigns.content import BLOCK, Check, message_for, template_checks
from campaigns.models import (
    Alert,
    Campaign,
    CampaignStatus,
    Exclusion,
    ExclusionReason,
    Lease,
    OptOut,
    OptOutKeyword,
    Send,
    Sender,
    SendStatus,
    Template,
    TemplateCategory,
    WebhookDelivery,
)
from campaigns.schedule import audience_time_zone, quiet_until
from campaigns.throttle import get_bucket
from crm.models import ConsentStatus, Contact
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.services import contact_set_consent
from tagging.audiences.language import SegmentError, parse
from tagging.audiences.selectors import contacts_matching
from tagging.audiences.sql import to_q

logger = logging.getLogger(__name__)

LIVE = [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.SENT, SendStatus.DELIVERED,
        SendStatus.READ]
OPEN = [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.HELD, SendStatus.LIMITED]
VALID_PHONE = r"^\+[1-9][0-9]{6,14}$"
DEFAULT_AB = {"group_size": 1000, "holdout": 0, "metric": "read", "window_minutes": 60,
              "min_audience": 2000}


def _setting(name: str, default):
    return getattr(settings, name, default)


class CampaignError(ValueError):
    """A request that cannot be done as asked; the message says why and what to do."""


class LaunchBlocked(CampaignError):
    def __init__(self, checks: list[Check]):
        self.checks = checks
        super().__init__(" ".join(c.message for c in checks if c.level == BLOCK))


# --- Templates and campaigns -------------------------------------------------------

def template_create(*, name: str, language: str, body: str, category: str = "marketing",
                    variables: list | None = None, footer: str = "", buttons: list | None = None,
                    status: str = "approved") -> Template:
    """Create or update the template ``name``/``language`` (safe to repeat)."""
    template, _created = Template.objects.update_or_create(
        name=name, language=language,
        defaults={"body": body, "category": category, "variables": variables or [],
                  "footer": footer, "buttons": buttons or [], "status": status})
    return template


def campaign_create(*, name: str, template: Template, audience: str, suppression: str = "",
                    scheduled_at: datetime | None = None, rate_per_second: int | None = None,
                    ab_config: dict | None = None, followup_template: Template | None = None,
                    followup_after_days: int = 3, phone_number_id: str = "",
                    time_zone: str = "", quiet_start=None, quiet_end=None,
                    actor=None) -> Campaign:
    for label, expression in (("audience", audience), ("suppression", suppression)):
        if expression.strip():
            try:
                parse(expression)
            except SegmentError as exc:
                raise CampaignError(_("The %(label)s expression is invalid: %(error)s")
                                    % {"label": label, "error": exc}) from exc
    if Campaign.objects.filter(name=name).exists():
        raise CampaignError(_("A campaign named “%(name)s” exists already.") % {"name": name})
    return Campaign.objects.create(
        name=name, template=template, audience=audience, suppression=suppression,
        scheduled_at=scheduled_at, rate_per_second=rate_per_second, ab_config=ab_config or {},
        followup_template=followup_template, followup_after_days=followup_after_days,
        phone_number_id=phone_number_id, time_zone=time_zone, quiet_start=quiet_start,
        quiet_end=quiet_end, created_by=actor if getattr(actor, "pk", None) else None)


def template_test_send(*, template: Template, phone: str, contact: Contact | None = None,
                       backend=None) -> SendResult:
    """Send ``template`` once to ``phone``, with ``contact``'s values (default: the
    contact with that number, else the fallbacks).

    Raises ``CampaignError`` for a number that is not valid, ``WhatsAppError``
    when WhatsApp refused the message and ``AmbiguousSendError`` when nobody can
    tell. Nothing is recorded as a campaign send.
    """
    try:
        to = normalize_phone(phone)
    except InvalidPhoneNumber as exc:
        raise CampaignError(str(exc)) from None
    if contact is None:
        contact = Contact.objects.filter(phone=to).first() or Contact(phone=to)
    own_backend = backend is None
    backend = backend or get_backend()
    try:
        return backend.send_template(to=to, template=message_for(template, contact),
                                     callback_data="tw:test")
    finally:
        if own_backend:
            backend.close()


def opt_out_words() -> list[str]:
    return list(OptOutKeyword.objects.filter(active=True).values_list("word", flat=True))


def campaign_templates(campaign: Campaign) -> dict[str, Template]:
    """Variant key → template ("" is the campaign's own template)."""
    templates = {"": campaign.template}
    variants = (campaign.ab_config or {}).get("variants") or []
    ids = [v.get("template") for v in variants]
    by_id = Template.objects.in_bulk([i for i in ids if i])
    for variant in variants:
        templates[variant["key"]] = by_id.get(variant.get("template")) or campaign.template
    if campaign.ab_winner in templates:
        # After the decision the held rest (variant "") gets the winner's template.
        templates[""] = templates[campaign.ab_winner]
    return templates


def campaign_checks(*, campaign: Campaign, now: datetime | None = None) -> list[Check]:
    """Everything that blocks or should be looked at before launch."""
    checks: list[Check] = []
    words = opt_out_words()
    for template in dict.fromkeys(campaign_templates(campaign).values()):
        checks.extend(template_checks(template, opt_out_words=words))
    try:
        audience = campaign_audience(campaign, now)
    except SegmentError as exc:
        return [*checks, Check(BLOCK, "audience_invalid", _(
            "The audience expression is invalid: %(error)s") % {"error": exc})]
    reachable = audience.filter(is_blocked=False).exclude(
        consent_status=ConsentStatus.OPTED_OUT)
    if campaign.template.category == TemplateCategory.MARKETING:
        reachable = reachable.filter(consent_status=ConsentStatus.OPTED_IN)
    count = reachable.count()
    if count == 0:
        checks.append(Check(BLOCK, "no_consented_contacts", _(
            "No contact in the audience has agreed to receive marketing messages; nothing "
            "would be sent.")))
    elif count < 500 and not any(
            "last_name" in str(v) for v in campaign.template.variables or []):
        checks.append(Check("warn", "personalise", _(
            "Only %(n)d recipients: personalise with the surname (e.g. “Frau Chen”, variable "
            "salutation_last_name) — it lifts clicks by about 25%%.") % {"n": count}))
    ab = {**DEFAULT_AB, **(campaign.ab_config or {})}
    if campaign.ab_config.get("variants") and count < ab["min_audience"]:
        checks.append(Check("warn", "ab_too_small", _(
            "The A/B test needs at least %(min)d recipients (about %(n)d now); everybody will "
            "get the first variant.") % {"min": ab["min_audience"], "n": count}))
    return checks


# --- Launch and snapshot --------------------------------------------------------------

@dataclass
class Snapshot:
    recipients: int
    excluded: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)


def campaign_launch(*, campaign: Campaign, actor=None,
                    now: datetime | None = None) -> Snapshot | None:
    """Check, then start sending now or at ``scheduled_at``.

    Raises ``LaunchBlocked`` listing every blocking finding; warnings don't
    stop a launch. Launching a launched campaign changes nothing.
    """
    now = now or timezone.now()
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        return None
    checks = campaign_checks(campaign=campaign, now=now)
    if any(c.level == BLOCK for c in checks):
        raise LaunchBlocked(checks)
    if campaign.scheduled_at and campaign.scheduled_at > now:
        Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SCHEDULED)
        campaign.status = CampaignStatus.SCHEDULED
        return None
    return campaign_start(campaign=campaign, now=now)


def campaign_start(*, campaign: Campaign, now: datetime | None = None) -> Snapshot | None:
    """Snapshot the recipients and switch to sending (once; a repeat returns None)."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = Campaign.objects.filter(
            pk=campaign.pk, status__in=[CampaignStatus.DRAFT, CampaignStatus.SCHEDULED]
        ).update(status=CampaignStatus.SENDING, launched_at=now, status_message="")
        if not claimed:
            return None
        snapshot = recipients_snapshot(campaign=campaign, now=now)
        if not campaign.time_zone:
            # Fix the audience's zone now, so quiet hours do not move while sending.
            zone = audience_time_zone(Contact.objects.filter(
                campaign_sends__campaign=campaign)) or settings.TIME_ZONE
            Campaign.objects.filter(pk=campaign.pk).update(time_zone=zone)
        if snapshot.recipients == 0:
            Campaign.objects.filter(pk=campaign.pk).update(
                status=CampaignStatus.COMPLETED, finished_at=now,
                status_message=_("No recipient was left after the exclusions."))
    campaign.refresh_from_db()
    from campaigns.tasks import campaign_send_task

    if campaign.status == CampaignStatus.SENDING:
        campaign_send_task.delay_on_commit(campaign.pk)
    return snapshot


def _frequency_counts(campaign: Campaign, now: datetime):
    recent = (Send.objects.filter(contact=OuterRef("pk"), status__in=LIVE,
                                  campaign__template__category=TemplateCategory.MARKETING)
              .exclude(campaign=campaign).order_by())

    def within(hours: int):
        since = now - timedelta(hours=hours)
        rows = recent.filter(Q(sent_at__gte=since) | Q(sent_at__isnull=True,
                                                       created_at__gte=since))
        return Coalesce(Subquery(rows.values("contact").annotate(n=Count("*")).values("n"),
                                 output_field=IntegerField()), Value(0))

    return within(24), within(24 * 7)


def recipients_snapshot(*, campaign: Campaign, now: datetime | None = None) -> Snapshot:
    """Write one Send per eligible contact and one Exclusion per left-out contact.

    Set-based: one query classifies the whole audience (a CASE over EXISTS
    subqueries); rows go in with ``bulk_create(ignore_conflicts=True)``, so a
    repeat adds nothing.
    """
    from django.db.models import Case, CharField, Exists, When

    now = now or timezone.now()
    marketing = campaign.template.category == TemplateCategory.MARKETING
    audience = campaign_audience(campaign, now)
    whens = [
        When(Exists(Send.objects.filter(campaign=campaign, contact=OuterRef("pk"))),
             then=Value(ExclusionReason.ALREADY)),
        When(is_blocked=True, then=Value(ExclusionReason.BLOCKLISTED)),
        When(consent_status=ConsentStatus.OPTED_OUT, then=Value(ExclusionReason.OPTED_OUT)),
    ]
    if marketing:
        whens.append(When(~Q(consent_status=ConsentStatus.OPTED_IN),
                          then=Value(ExclusionReason.NO_CONSENT)))
    whens.append(When(~Q(phone__regex=VALID_PHONE), then=Value(ExclusionReason.INVALID_NUMBER)))
    if campaign.suppression.strip():
        whens.append(When(to_q(parse(campaign.suppression), now),
                          then=Value(ExclusionReason.SUPPRESSED)))
    if marketing:
        day, week = _frequency_counts(campaign, now)
        audience = audience.annotate(cap_day=day, cap_week=week)
        whens.append(When(Q(cap_day__gte=_setting("CAMPAIGNS_CAP_PER_DAY", 1))
                          | Q(cap_week__gte=_setting("CAMPAIGNS_CAP_PER_WEEK", 3)),
                          then=Value(ExclusionReason.FREQUENCY_CAP)))
    rows = audience.annotate(reason=Case(*whens, default=Value(""), output_field=CharField()))
    eligible: list[tuple[int, str]] = []
    excluded: dict[str, int] = {}
    exclusions: list[Exclusion] = []
    for pk, phone, reason in rows.order_by("pk").values_list("pk", "phone", "reason").iterator(
            chunk_size=5000):
        if not reason:
            eligible.append((pk, phone))
            continue
        excluded[reason] = excluded.get(reason, 0) + 1
        if reason != ExclusionReason.ALREADY:
            exclusions.append(Exclusion(campaign=campaign, contact_id=pk, reason=reason,
                                        created_at=now))
        if len(exclusions) >= 5000:
            Exclusion.objects.bulk_create(exclusions, ignore_conflicts=True)
            exclusions = []
    Exclusion.objects.bulk_create(exclusions, ignore_conflicts=True)
    assignment = _ab_assignment(campaign, [pk for pk, _phone in eligible])
    sends, variants = [], {}
    for pk, phone in eligible:
        variant, status = assignment.get(pk, ("", SendStatus.QUEUED))
        variants[variant or status] = variants.get(variant or status, 0) + 1
        sends.append(Send(campaign=campaign, contact_id=pk, phone=phone, variant=variant,
                          status=status, created_at=now))
    Send.objects.bulk_create(sends, batch_size=5000, ignore_conflicts=True)
    return Snapshot(recipients=len(sends), excluded=excluded, variants=variants)


def _ab_assignment(campaign: Campaign, ids: list[int]) -> dict[int, tuple[str, str]]:
    """Random groups per variant, an optional holdout, the rest held for the winner."""
    variants = [v["key"] for v in (campaign.ab_config or {}).get("variants") or []]
    ab = {**DEFAULT_AB, **(campaign.ab_config or {})}
    if len(variants) < 2 or len(ids) < ab["min_audience"]:
        return {}
    shuffled = list(ids)
    random.Random(f"{campaign.pk}:{campaign.launched_at}").shuffle(shuffled)
    size, result, position = int(ab["group_size"]), {}, 0
    for key in variants:
        for pk in shuffled[position:position + size]:
            result[pk] = (key, SendStatus.QUEUED)
        position += size
    for pk in shuffled[position:position + int(ab["holdout"])]:
        result[pk] = ("", SendStatus.HOLDOUT)
    position += int(ab["holdout"])
    for pk in shuffled[position:]:
        result[pk] = ("", SendStatus.HELD)
    return result


# --- Pause, resume, cancel ------------------------------------------------------------

def campaign_pause(*, campaign: Campaign, reason: str = "") -> bool:
    """Stop handing out new sends; the ones in flight finish. False when not sending."""
    changed = Campaign.objects.filter(
        pk=campaign.pk, status__in=[CampaignStatus.SENDING, CampaignStatus.SCHEDULED]
    ).update(status=CampaignStatus.PAUSED, status_message=reason)
    campaign.refresh_from_db()
    return bool(changed)


def campaign_resume(*, campaign: Campaign) -> bool:
    changed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.PAUSED).update(
        status=CampaignStatus.SENDING, status_message="")
    campaign.refresh_from_db()
    if changed:
        if not campaign.launched_at:
            Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SCHEDULED)
            campaign.refresh_from_db()
            return True
        from campaigns.tasks import campaign_send_task

        campaign_send_task.delay_on_commit(campaign.pk)
    return bool(changed)


def campaign_cancel(*, campaign: Campaign, reason: str = "") -> int:
    """Cancel everything not yet handed to WhatsApp; return how many sends were cancelled."""
    now = timezone.now()
    with transaction.atomic():
        Campaign.objects.filter(pk=campaign.pk).exclude(
            status__in=[CampaignStatus.COMPLETED, CampaignStatus.CANCELLED,
                        CampaignStatus.ABORTED]
        ).update(status=CampaignStatus.CANCELLED, finished_at=now,
                 status_message=reason or _("Cancelled."))
        cancelled = Send.objects.filter(
            campaign=campaign, status__in=[SendStatus.QUEUED, SendStatus.HELD,
                                           SendStatus.LIMITED]
        ).update(status=SendStatus.CANCELLED)
    campaign.refresh_from_db()
    return cancelled


def _abort(campaign_id: int, message: str, code: int | None = None) -> None:
    now = timezone.now()
    with transaction.atomic():
        Campaign.objects.filter(pk=campaign_id).exclude(
            status__in=[CampaignStatus.CANCELLED, CampaignStatus.ABORTED]
        ).update(status=CampaignStatus.ABORTED, finished_at=now, status_message=message)
        Send.objects.filter(campaign_id=campaign_id,
                            status__in=[SendStatus.QUEUED, SendStatus.HELD,
                                        SendStatus.LIMITED]).update(
            status=SendStatus.CANCELLED)
        Alert.objects.create(campaign_id=campaign_id, code=code, message=message)
    logger.error("campaign %s aborted: %s", campaign_id, message)


def sender_stop(*, phone_number_id: str, reason: str, code: int | None = None) -> None:
    """Stop all sending from a number (368 and account errors) until an operator resumes."""
    Sender.objects.get_or_create(phone_number_id=phone_number_id)
    Sender.objects.filter(phone_number_id=phone_number_id).update(stopped=True,
                                                                  stopped_reason=reason)
    Campaign.objects.filter(status=CampaignStatus.SENDING).update(
        status=CampaignStatus.PAUSED, status_message=reason)
    Alert.objects.create(code=code, message=reason)
    logger.critical("sending stopped for %s: %s", phone_number_id, reason)


def sender_resume(*, phone_number_id: str) -> bool:
    return bool(Sender.objects.filter(phone_number_id=phone_number_id, stopped=True).update(
        stopped=False, stopped_reason=""))


def contact_opt_out(*, contact: Contact, source: str, detail: str = "") -> bool:
    """Opt ``contact`` out of marketing and log why; False when it already was."""
    changed = contact_set_consent(contact=contact, status=ConsentStatus.OPTED_OUT,
                                  source=f"whatsapp {source}: {detail}"[:200])
    OptOut.objects.create(contact=contact, source=source, detail=detail[:300])
    return changed


# --- The send loop ------------------------------------------------------------------

def _claim(campaign_id: int, limit: int, now: datetime) -> tuple[uuid.UUID, list[Send]]:
    token = uuid.uuid4()
    due = (Send.objects.filter(campaign_id=campaign_id, status=SendStatus.QUEUED)
           .filter(Q(not_before__isnull=True) | Q(not_before__lte=now)).order_by("id"))
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
    from django.db.models import Exists

    rows.filter(Exists(finished)).update(status=SendStatus.CANCELLED, claim=None,
                                         attempts=F("attempts") - 1)
    rows.update(status=SendStatus.QUEUED, claim=None, claimed_at=None,
                attempts=F("attempts") - 1)


def _requeue(send: Send, token: uuid.UUID, delay: float, error: WhatsAppError) -> None:
    Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
        status=SendStatus.QUEUED, claim=None,
        not_before=timezone.now() + timedelta(seconds=delay),
        error_code=error.code, error_detail=str(error)[:500])


def _fail(send: Send, token: uuid.UUID | None, error: WhatsAppError) -> None:
    rows = Send.objects.filter(pk=send.pk)
    if token:
        rows = rows.filter(claim=token, status=SendStatus.SENDING)
    rows.update(status=SendStatus.FAILED, claim=None, failed_at=timezone.now(),
                error_code=error.code, error_detail=str(error)[:500])


def send_defer(*, send_id: int, error: WhatsAppError, token: uuid.UUID | None = None,
               statuses: list[str] | None = None, now: datetime | None = None) -> str:
    """WhatsApp limited this recipient (131049): retry hours later, or fail after N tries.

    The send becomes *limited* with ``not_before`` = now + ``CAMPAIGNS_LIMITED_RETRY_HOURS``
    (24), doubled per earlier deferral; beat's tick queues it again when due (no long
    countdown). After
    ``CAMPAIGNS_LIMITED_RETRIES`` (2) deferrals the next 131049 fails it.
    Returns "deferred", "failed", or "" when the send was not in ``statuses``.
    """
    now = now or timezone.now()
    rows = Send.objects.filter(pk=send_id)
    if token:
        rows = rows.filter(claim=token, status=SendStatus.SENDING)
    elif statuses:
        rows = rows.filter(status__in=statuses)
    limit = _setting("CAMPAIGNS_LIMITED_RETRIES", 2)
    detail = str(error)[:500]
    done = rows.values_list("deferrals", flat=True).first() or 0
    # Increasing intervals (24 h, 48 h, …): Meta's limit lasts for differing periods.
    wait = timedelta(hours=_setting("CAMPAIGNS_LIMITED_RETRY_HOURS", 24) * 2 ** done)
    if rows.filter(deferrals__lt=limit).update(
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


def limited_requeue(*, now: datetime | None = None) -> int:
    """Queue again limited sends whose retry time has come (campaigns still sending)."""
    now = now or timezone.now()
    return Send.objects.filter(status=SendStatus.LIMITED, not_before__lte=now,
                               campaign__status=CampaignStatus.SENDING).update(
        status=SendStatus.QUEUED, wamid="", claim=None, claimed_at=None, attempts=0,
        not_before=None)


def daily_budget_left(phone_number_id: str, now: datetime | None = None) -> int | None:
    """Unique recipients still allowed in the rolling 24 h (None: unlimited)."""
    limit = _setting("WHATSAPP_DAILY_UNIQUE_LIMIT", 0)
    if not limit:
        return None
    now = now or timezone.now()
    used = (Send.objects.filter(Q(campaign__phone_number_id=phone_number_id)
                                | Q(campaign__phone_number_id=""))
            .filter(Q(sent_at__gte=now - timedelta(hours=24)) | Q(status=SendStatus.SENDING))
            .values("contact_id").distinct().count())
    return max(limit - used, 0)


@dataclass
class LoopResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0
    stopped: str = ""


def campaign_send_batch(*, campaign_id: int, max_seconds: float = 20.0,
                        backend=None) -> LoopResult:
    """Send due messages of one campaign for up to ``max_seconds``; safe to run in parallel.

    Returns when the time is up, nothing is due, or the campaign stopped
    sending. Several workers may run it for the same campaign at once: each
    send is claimed by exactly one of them.
    """
    result = LoopResult()
    deadline = time.monotonic() + max_seconds
    campaign = Campaign.objects.select_related("template").get(pk=campaign_id)
    templates = campaign_templates(campaign)
    bucket = get_bucket(campaign.sender_id, campaign.rate_per_second)
    own_backend = backend is None
    backend = backend or get_backend(phone_number_id=campaign.phone_number_id or None)
    batch = max(1, min(50, int(bucket.rate // 4) or 1))
    _relaxed_commits(True)
    try:
        while time.monotonic() < deadline:
            status = Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True)
            if status.first() != CampaignStatus.SENDING:
                result.stopped = "campaign not sending"
                break
            if quiet_until(campaign):
                result.stopped = "quiet hours"
                break
            sender = Sender.objects.filter(phone_number_id=campaign.sender_id,
                                           stopped=True).first()
            if sender:
                result.stopped = sender.stopped_reason
                break
            limit = batch
            budget = daily_budget_left(campaign.sender_id)
            if budget is not None:
                if budget <= 0:
                    Campaign.objects.filter(pk=campaign_id).update(status_message=_(
                        "Daily messaging limit reached (WHATSAPP_DAILY_UNIQUE_LIMIT); sending "
                        "continues as the rolling 24 hours free up."))
                    result.stopped = "daily limit"
                    break
                limit = min(limit, budget)
            token, claimed = _claim(campaign_id, limit, timezone.now())
            if not claimed:
                break
            for index, send in enumerate(claimed):
                if index and index % 10 == 0 and Campaign.objects.filter(
                        pk=campaign_id).exclude(status=CampaignStatus.SENDING).exists():
                    _release(token, [s.pk for s in claimed[index:]])
                    result.stopped = "campaign not sending"
                    return result
                outcome = _send_one(campaign, templates, send, token, backend, bucket)
                if outcome == "stopped":
                    _release(token, [s.pk for s in claimed[index + 1:]])
                    result.stopped = "error"
                    return result
                setattr(result, outcome, getattr(result, outcome) + 1)
    finally:
        _relaxed_commits(False)
        if own_backend:
            backend.close()
        campaign_finish_if_done(campaign_id=campaign_id)
    return result




def _send_one(campaign: Campaign, templates: dict[str, Template], send: Send,
              token: uuid.UUID, backend, bucket) -> str:
    template = templates.get(send.variant) or campaign.template
    message = message_for(template, send.contact)
    # Re-check the claim and stamp it right before the call: the reconciler only
    # requeues sends whose stamp is older than the grace period, so a slow loop
    # never races a requeue (the grace period must exceed the bucket wait plus the
    # HTTP timeout). Stamped before the rate slot, so that nothing but the request
    # itself stands between a slot and the message reaching WhatsApp.
    if not Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
            claimed_at=timezone.now()):
        return "retried"
    bucket.acquire()
    try:
        sent = backend.send_template(to=send.phone, template=message,
                                     callback_data=f"tw:{send.pk}")
    except AmbiguousSendError as exc:
        # Leave it in flight: a webhook adopts it, or the reconciler requeues it.
        Send.objects.filter(pk=send.pk).update(error_detail=str(exc)[:500])
        return "retried"
    except WhatsAppError as error:
        return _handle_error(campaign, send, token, error, bucket)
    now = timezone.now()
    if not Send.objects.filter(pk=send.pk, claim=token, status=SendStatus.SENDING).update(
            status=SendStatus.SENT, wamid=sent.wamid, sent_at=now, claim=None):
        # A webhook got here first (it found us by callback data): keep its status.
        Send.objects.filter(pk=send.pk, wamid="").update(wamid=sent.wamid, sent_at=now)
    return "sent"


def _relaxed_commits(on: bool) -> None:
    """Let the send loop's own writes commit without waiting for the WAL flush (PostgreSQL).

    A killed *worker* loses nothing this way (each commit is already in the
    server). If the *database server* crashes, the last fraction of a second
    of stamps, "sent" and retry writes can be lost: those sends fall back to
    "in flight", which the reconciler handles. Claims are committed durably
    (``SET LOCAL synchronous_commit TO ON``): they prevent a second message.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO " + ("OFF" if on else "DEFAULT"))


MAX_RETRIES = {Action.SLOW_NUMBER: 10, Action.GLOBAL_BACKOFF: 10, Action.RETRY_RECIPIENT: 5,
               Action.RETRY_LIMITED: 3, Action.RETRY_LATER: 5}


def _handle_error(campaign: Campaign, send: Send, token: uuid.UUID, error: WhatsAppError,
                  bucket) -> str:
    """Apply the reference's code → action table to one refused send."""
    action = error.action
    attempts = send.attempts  # already counts this attempt
    if action in MAX_RETRIES:
        if attempts >= MAX_RETRIES[action]:
            _fail(send, token, error)
            return "failed"
        if action == Action.SLOW_NUMBER:
            # Meta refuses "until you are within your allowed level again": a short
            # pause, and half rate (compounding) while refusals keep coming.
            bucket.penalize(0.25, slow_for=5.0)
            delay = 1.0
        elif action == Action.GLOBAL_BACKOFF:
            bucket.penalize(5.0)
            delay = 5.0
        elif action == Action.RETRY_RECIPIENT:
            delay = 4.0 ** (attempts - 1)  # 1, 4, 16, 64 s
        elif action == Action.RETRY_LATER:
            delay = 60.0
        else:
            delay = 2.0 ** attempts
        _requeue(send, token, delay, error)
        return "retried"
    if action == Action.FAIL_RECIPIENT:
        _fail(send, token, error)
        return "failed"
    if action == Action.DEFER_RECIPIENT:
        return send_defer(send_id=send.pk, error=error, token=token) or "retried"
    if action == Action.OPT_OUT:
        _fail(send, token, error)
        contact_opt_out(contact=send.contact, source="error_131050", detail=error.message)
        return "failed"
    if action == Action.PAUSE_CAMPAIGN:
        _requeue(send, token, 0, error)
        message = _(
            "Paused: WhatsApp limits this number (error %(code)s, “%(title)s”). Check the "
            "quality rating and messaging limit in WhatsApp Manager, then resume in a few "
            "hours.") % {"code": error.code, "title": error.message}
        campaign_pause(campaign=campaign, reason=message)
        Alert.objects.create(campaign=campaign, code=error.code, message=message)
        return "stopped"
    if action == Action.ABORT_CAMPAIGN:
        _fail(send, token, error)
        _abort(campaign.pk, _(
            "Aborted: WhatsApp refused the template “%(name)s” (%(lang)s) with error "
            "%(code)s (“%(title)s”). Every recipient would fail. Check the template name, "
            "language and approval in WhatsApp Manager, and that the variables match its "
            "placeholders; then create a new campaign.") % {
                "name": campaign.template.name, "lang": campaign.template.language,
                "code": error.code, "title": error.message}, error.code)
        return "stopped"
    # STOP_ALL
    _requeue(send, token, 0, error)
    sender_stop(phone_number_id=campaign.sender_id, reason=_(
        "All sending stopped: WhatsApp error %(code)s (“%(title)s”). Resolve it in WhatsApp "
        "Manager / Business Support, then resume the sending number in the admin.")
        % {"code": error.code, "title": error.message}, code=error.code)
    return "stopped"


def campaign_finish_if_done(*, campaign_id: int) -> bool:
    """Mark a sending campaign completed when nothing is left to send."""
    if Send.objects.filter(campaign_id=campaign_id, status__in=OPEN).exists():
        return False
    return bool(Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.COMPLETED, finished_at=timezone.now()))


def inflight_reconcile(*, now: datetime | None = None, grace: float | None = None) -> int:
    """Queue again sends stuck in flight with no webhook after the grace period.

    Not while stored webhooks older than a few seconds wait to be applied: the
    "sent" status that would adopt a send may be among them (a backlog after a
    burst or a worker outage must not turn into duplicates).
    """
    now = now or timezone.now()
    grace = grace if grace is not None else _setting("WHATSAPP_INFLIGHT_GRACE_SECONDS", 600)
    if WebhookDelivery.objects.filter(processed_at__isnull=True,
                                      received_at__lt=now - timedelta(seconds=5)).exists():
        return 0
    stuck = Send.objects.filter(status=SendStatus.SENDING, wamid="",
                                claimed_at__lt=now - timedelta(seconds=grace))
    count = stuck.update(status=SendStatus.QUEUED, claim=None, claimed_at=None)
    if count:
        logger.warning("requeued %d sends stuck in flight for over %ss", count, grace)
    return count


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


# --- A/B decision, follow-ups, the periodic tick ------------------------------------------

def ab_decide(*, campaign: Campaign, now: datetime | None = None, force: bool = False) -> str:
    """Pick the winner once the decision window has passed and release the held rest.

    Returns the winner's key, or "" when it is not time yet (or nothing to decide).
    """
    from campaigns.selectors import ab_comparison, counts

    now = now or timezone.now()
    variants = [v["key"] for v in (campaign.ab_config or {}).get("variants") or []]
    if campaign.ab_decided_at or len(variants) < 2 or campaign.status != CampaignStatus.SENDING:
        return ""
    sends = Send.objects.filter(campaign=campaign)
    if not sends.filter(status=SendStatus.HELD).exists():
        return ""
    ab = {**DEFAULT_AB, **campaign.ab_config}
    window_end = (campaign.launched_at or now) + timedelta(minutes=int(ab["window_minutes"]))
    if not force and (now < window_end or sends.filter(
            variant__in=variants, status__in=[SendStatus.QUEUED, SendStatus.SENDING]).exists()):
        return ""
    per_variant = {key: counts(sends.filter(variant=key)) for key in variants}
    summary = ab_comparison(campaign, per_variant)
    winner = summary["leader"]
    with transaction.atomic():
        if not Campaign.objects.filter(pk=campaign.pk, ab_decided_at__isnull=True).update(
                ab_decided_at=now, ab_winner=winner, ab_summary=summary):
            return ""
        sends.filter(status=SendStatus.HELD).update(status=SendStatus.QUEUED)
    campaign.refresh_from_db()
    from campaigns.tasks import campaign_send_task

    campaign_send_task.delay_on_commit(campaign.pk)
    return winner


def followups_create(*, now: datetime | None = None) -> list[Campaign]:
    """Create and start the follow-up of every campaign whose delay has passed (once)."""
    now = now or timezone.now()
    created = []
    parents = Campaign.objects.filter(status=CampaignStatus.COMPLETED,
                                      followup_template__isnull=False,
                                      finished_at__isnull=False).exclude(
        followups__isnull=False)
    for parent in parents:
        if parent.finished_at + timedelta(days=parent.followup_after_days) > now:
            continue
        child, is_new = Campaign.objects.get_or_create(
            name=f"{parent.name} – follow-up"[:200],
            defaults={"template": parent.followup_template, "parent": parent,
                      "audience": parent.audience, "rate_per_second": parent.rate_per_second,
                      "phone_number_id": parent.phone_number_id})
        if is_new:
            campaign_start(campaign=child, now=now)
            created.append(child)
    return created


def campaign_audience(campaign: Campaign, now: datetime | None = None):
    """The campaign's audience: its expression, or the parent's non-repliers for a follow-up."""
    if campaign.parent_id:
        rows = Send.objects.filter(campaign_id=campaign.parent_id,
                                   status__in=[SendStatus.SENT, SendStatus.DELIVERED,
                                               SendStatus.READ], replied_at__isnull=True)
        if campaign.parent.followup_skip_read:
            rows = rows.filter(read_at__isnull=True)
        return Contact.objects.filter(pk__in=rows.values("contact_id"))
    return contacts_matching(campaign.audience, now=now)


def campaigns_tick(*, now: datetime | None = None) -> list[int]:
    """The beat's work: start due campaigns, decide A/B tests, create follow-ups, reconcile.

    Returns the ids of campaigns with sends due now, for the caller to dispatch.
    """
    now = now or timezone.now()
    for campaign in Campaign.objects.filter(status=CampaignStatus.SCHEDULED,
                                            scheduled_at__lte=now):
        campaign_start(campaign=campaign, now=now)
    for campaign in Campaign.objects.filter(status=CampaignStatus.SENDING,
                                            ab_decided_at__isnull=True).exclude(ab_config={}):
        ab_decide(campaign=campaign, now=now)
    followups_create(now=now)
    inflight_reconcile(now=now)
    limited_requeue(now=now)
    from campaigns.backends.sandbox import sandbox_flush

    sandbox_flush(now=now)
    due = []
    for campaign in Campaign.objects.filter(status=CampaignStatus.SENDING).only(
            "id", "time_zone", "quiet_start", "quiet_end", "audience", "parent"):
        campaign_id = campaign.pk
        if campaign_finish_if_done(campaign_id=campaign_id):
            continue
        if quiet_until(campaign, now):
            continue  # the sends stay queued; a tick after the quiet hours picks them up
        if Send.objects.filter(
                campaign_id=campaign_id, status=SendStatus.QUEUED).filter(
                Q(not_before__isnull=True) | Q(not_before__lte=now)).exists():
            due.append(campaign_id)
    return due
