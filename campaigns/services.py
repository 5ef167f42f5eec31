"""Writes for campaigns: templates, checks, launch, pause/resume/cancel/abort, A/B, follow-ups.

Sending itself (claims, guards, the error table) is ``campaigns.sending``;
beat's periodic work is ``campaigns.tick``. Services queue the send task by
name (``crm.jobs.enqueue``, which survives a broker outage), because
``campaigns.tasks`` imports them.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from campaigns.audience import campaign_audience, reachable
from campaigns.backends import SendResult, get_backend
from campaigns.content import BLOCK, WARN, Check, message_for, template_checks
from campaigns.models import (
    Alert,
    Campaign,
    CampaignStatus,
    DeletionKeyword,
    DeletionRequest,
    Exclusion,
    ExclusionReason,
    InboundMessage,
    OptOut,
    SandboxEvent,
    Send,
    Sender,
    SendStatus,
    StatusEvent,
    Template,
    TemplateCategory,
)
from campaigns.policy import sending_policy
from campaigns.reading import reading_hours, reading_time
from campaigns.schedule import campaign_time_zone, quiet_hours
from campaigns.selectors import ab_comparison, campaign_templates, counts, opt_out_words
from campaigns.zones import audience_time_zone
from crm.jobs import enqueue
from crm.models import ConsentStatus, Contact
from crm.phones import InvalidPhoneNumber, normalize_phone
from crm.privacy import Subject
from crm.services import contact_set_consent
from tagging.audiences.language import SegmentError, parse
from tagging.audiences.sql import to_q

logger = logging.getLogger(__name__)

SEND_TASK = "campaigns.tasks.campaign_send_task"
ANALYZE_AFTER = 1000  # sends inserted by a launch that call for fresh planner statistics
LIVE = [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.SENT, SendStatus.DELIVERED,
        SendStatus.READ]
OPEN = [SendStatus.QUEUED, SendStatus.SENDING, SendStatus.HELD, SendStatus.LIMITED]
VALID_PHONE = r"^\+[1-9][0-9]{6,14}$"
DEFAULT_AB = {"group_size": 1000, "holdout": 0, "metric": "read", "window_minutes": 60,
              "min_audience": 2000}


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
                    send_at_reading_hour: bool = False, reading_window_hours: int = 24,
                    actor=None) -> Campaign:
    for label, expression in ((_("audience"), audience), (_("suppression"), suppression)):
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
        quiet_end=quiet_end, send_at_reading_hour=send_at_reading_hour,
        reading_window_hours=reading_window_hours,
        created_by=actor if getattr(actor, "pk", None) else None)


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
    marketing = campaign.template.category == TemplateCategory.MARKETING
    count = reachable(audience, marketing=marketing).count()
    if count == 0:
        checks.append(Check(BLOCK, "no_consented_contacts", _(
            "No contact in the audience has agreed to receive marketing messages; nothing "
            "would be sent.")))
    elif count < 500 and not any(
            "last_name" in str(v) for v in campaign.template.variables or []):
        checks.append(Check(WARN, "personalise", _(
            "Only %(n)d recipients: personalise with the surname (e.g. “Frau Chen”, variable "
            "salutation_last_name) — it lifts clicks by about 25%%.") % {"n": count}))
    if marketing and count:
        checks.extend(_cap_checks(campaign, reachable(audience, marketing=True), now))
    ab = {**DEFAULT_AB, **(campaign.ab_config or {})}
    if campaign.ab_config.get("variants") and count < ab["min_audience"]:
        checks.append(Check(WARN, "ab_too_small", _(
            "The A/B test needs at least %(min)d recipients (about %(n)d now); everybody will "
            "get the first variant.") % {"min": ab["min_audience"], "n": count}))
    return checks


def _cap_checks(campaign: Campaign, reachable_audience, now: datetime | None) -> list[Check]:
    """How many contacts each frequency cap would leave out (the admin's caps)."""
    caps = sending_policy()
    day, week = _frequency_counts(campaign, now or timezone.now())
    found = reachable_audience.annotate(cap_day=day, cap_week=week).aggregate(
        day=Count("pk", filter=Q(cap_day__gte=caps.cap_per_day)),
        week=Count("pk", filter=Q(cap_week__gte=caps.cap_per_week)))
    if not (found["day"] or found["week"]):
        return []
    return [Check(WARN, "frequency_caps", _(
        "The frequency caps leave out contacts who had enough marketing messages: %(day)d by "
        "the daily cap (at most %(cap_day)d a day) and %(week)d by the weekly cap (at most "
        "%(cap_week)d in 7 days). Marketers change the caps under Campaigns › Frequency caps "
        "and quiet hours.") % {"day": found["day"], "week": found["week"],
                               "cap_day": caps.cap_per_day, "cap_week": caps.cap_per_week})]


# --- Launch and snapshot --------------------------------------------------------------

@dataclass
class Snapshot:
    recipients: int
    excluded: dict[str, int] = field(default_factory=dict)
    variants: dict[str, int] = field(default_factory=dict)
    # With send_at_reading_hour: recipients moved to their reading hour, and how many
    # different times that makes; the rest go at the start time.
    by_reading_hour: int = 0
    reading_slots: int = 0


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
    if campaign.status == CampaignStatus.SENDING:
        _sends_analyze(snapshot.recipients)
        enqueue(SEND_TASK, campaign.pk)
    return snapshot


def _sends_analyze(inserted: int) -> None:
    """Fresh planner statistics after a launch's sends are committed (PostgreSQL): the send
    loop's claim is planned from them, and autovacuum gathers them only minutes later —
    until then each claim reads all the campaign's sends. Not in the launch's transaction
    (nor in the estimate's rolled-back one): ANALYZE's lock would serialize launches."""
    if connection.vendor == "postgresql" and inserted >= ANALYZE_AFTER:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE campaigns_send")


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


def _classified(campaign: Campaign, contacts: QuerySet[Contact], now: datetime, *,
                decided: bool = False) -> QuerySet[Contact]:
    """``contacts`` annotated with ``reason``: the ``ExclusionReason`` that leaves each out
    of ``campaign`` ("" when it gets the message), one CASE over EXISTS subqueries.

    ``ALREADY``: a send of the campaign exists, or with ``decided`` an exclusion too."""
    marketing = campaign.template.category == TemplateCategory.MARKETING
    already = Exists(Send.objects.filter(campaign=campaign, contact=OuterRef("pk")))
    if decided:
        already |= Exists(Exclusion.objects.filter(campaign=campaign, contact=OuterRef("pk")))
    whens = [
        When(already, then=Value(ExclusionReason.ALREADY)),
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
        contacts = contacts.annotate(cap_day=day, cap_week=week)
        caps = sending_policy()
        whens.append(When(Q(cap_day__gte=caps.cap_per_day)
                          | Q(cap_week__gte=caps.cap_per_week),
                          then=Value(ExclusionReason.FREQUENCY_CAP)))
    return contacts.annotate(reason=Case(*whens, default=Value(""), output_field=CharField()))


def recipients_snapshot(*, campaign: Campaign, now: datetime | None = None) -> Snapshot:
    """Write one Send per eligible contact and one Exclusion per left-out contact.

    Set-based: one query classifies the whole audience (a CASE over EXISTS
    subqueries); rows go in with ``bulk_create(ignore_conflicts=True)``, so a
    repeat adds nothing.
    """
    now = now or timezone.now()
    rows = _classified(campaign, campaign_audience(campaign, now), now)
    eligible: list[tuple[int, str]] = []
    countries: set[str] = set()
    excluded: dict[str, int] = {}
    exclusions: list[Exclusion] = []
    for pk, phone, country, reason in rows.order_by("pk").values_list(
            "pk", "phone", "country", "reason").iterator(chunk_size=5000):
        if not reason:
            eligible.append((pk, phone))
            countries.add(country)
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
    later = _reading_times(campaign, countries, now) if eligible else {}
    sends, variants = [], {}
    for pk, phone in eligible:
        variant, status = assignment.get(pk, ("", SendStatus.QUEUED))
        variants[variant or status] = variants.get(variant or status, 0) + 1
        sends.append(Send(campaign=campaign, contact_id=pk, phone=phone, variant=variant,
                          status=status, created_at=now, not_before=later.get(pk)))
    Send.objects.bulk_create(sends, batch_size=5000, ignore_conflicts=True)
    moved = [later[pk] for pk, _phone in eligible if pk in later]
    return Snapshot(recipients=len(sends), excluded=excluded, variants=variants,
                    by_reading_hour=len(moved), reading_slots=len(set(moved)))


def _reading_times(campaign: Campaign, countries: set[str], now: datetime,
                   contacts=None) -> dict[int, datetime]:
    """Contact id → its reading-hour send time, for contacts not sent at the start time.

    Empty unless the campaign has ``send_at_reading_hour``. One query over the
    audience's reads (``campaigns.reading``); ``contacts`` defaults to the audience.
    """
    if not campaign.send_at_reading_hour:
        return {}
    zone = campaign_time_zone(campaign)
    if contacts is None:
        contacts = campaign_audience(campaign, now).values("pk")
    quiet = quiet_hours(campaign, zone)
    result = {}
    for pk, (hour, contact_zone) in reading_hours(
            contacts, countries=countries, default_zone=zone, now=now).items():
        slot = reading_time(hour, contact_zone, start=now,
                            window_hours=campaign.reading_window_hours, quiet=quiet)
        if slot is not None:
            result[pk] = slot
    return result


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


# --- Pause, resume, cancel, abort; the sending number; opt-outs -------------------------

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
        enqueue(SEND_TASK, campaign.pk)
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


def campaign_abort(*, campaign_id: int, message: str, code: int | None = None) -> None:
    """Abort a campaign for good (its template is refused): queued sends are cancelled."""
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


def campaign_finish_if_done(*, campaign_id: int) -> bool:
    """Mark a sending campaign completed when nothing is left to send (never a triggered one)."""
    if Send.objects.filter(campaign_id=campaign_id, status__in=OPEN).exists():
        return False
    return bool(Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING,
                                        triggered=False).update(
        status=CampaignStatus.COMPLETED, finished_at=timezone.now()))


# --- Triggered campaigns: one recipient at a time, when something happens ------------------

def campaign_triggered_ensure(*, name: str, template: Template, audience: str = "") -> Campaign:
    """The triggered campaign called ``name`` (e.g. a welcome), created on first use.

    A triggered campaign is never launched and has no snapshot: it is created
    sending and gets its recipients one at a time from ``campaign_send_triggered``;
    it never completes. ``audience`` only describes who it is for. Quiet hours, rate
    and sending number are set in the admin like any campaign's; pausing it holds
    its messages, cancelling it stops it for good. A campaign of the same name that
    is not triggered is left alone (the new one gets a number).
    """
    found = Campaign.objects.filter(name=name[:200], triggered=True).first()
    if found is None:
        taken = set(Campaign.objects.filter(name__startswith=name[:190]).values_list(
            "name", flat=True))
        unique = next(n for n in (name[:200], *(f"{name[:190]} ({i})" for i in range(2, 1000)))
                      if n not in taken)
        now = timezone.now()
        try:
            with transaction.atomic():
                found = Campaign.objects.create(
                    name=unique, template=template, audience=audience,
                    status=CampaignStatus.SENDING, triggered=True, launched_at=now,
                    status_message=_("Triggered: one message per contact, sent when it "
                                     "happens."))
        except IntegrityError:  # a concurrent first use created it a moment ago
            found = Campaign.objects.filter(name=unique, triggered=True).first()
            if found is None:
                raise
    elif found.template_id != template.pk:
        Campaign.objects.filter(pk=found.pk).update(template=template)
        found.template = template
    return found


def campaign_send_triggered(*, campaign: Campaign, contact: Contact,
                            now: datetime | None = None) -> str:
    """Queue a triggered campaign's message for ``contact``: decided once per contact, ever.

    Returns "queued"; or the ``ExclusionReason`` that leaves the contact out (no
    consent for marketing, opted out, blocklisted, invalid number, suppression,
    frequency cap), recorded as an ``Exclusion`` as at a launch; or "" when this
    contact was decided before or the campaign is cancelled or aborted. The send
    loop then treats the message like any other: it checks consent, opt-out and
    blocklist again right before sending, keeps quiet hours, the rate and the daily
    limit, and claims it exactly once. A paused campaign keeps it queued.
    """
    answers = campaign_send_triggered_many(campaign=campaign, contact_ids=[contact.pk], now=now)
    return answers.get(contact.pk, "")


def campaign_send_triggered_many(*, campaign: Campaign, contact_ids: Iterable[int],
                                 now: datetime | None = None) -> dict[int, str]:
    """``campaign_send_triggered`` for many contacts at once: contact id → its answer.

    The same rules, set-based as a launch's snapshot: one query classifies the
    contacts (already decided, blocklisted, opted out, no consent, invalid number,
    suppression, frequency caps), exclusions and sends go in with
    ``bulk_create(ignore_conflicts=True)``, and the send task is queued once.
    A contact id that names no contact is answered "".
    """
    now = now or timezone.now()
    ids = sorted(set(contact_ids))
    answers = dict.fromkeys(ids, "")
    campaign = Campaign.objects.select_related("template").get(pk=campaign.pk)
    if not ids or campaign.status in (CampaignStatus.CANCELLED, CampaignStatus.ABORTED):
        return answers
    # Decided before, or left out as at a launch: one query classifies them all.
    rows = _classified(campaign, Contact.objects.filter(pk__in=ids), now, decided=True)
    eligible: list[tuple[int, str]] = []
    countries: set[str] = set()
    exclusions: list[Exclusion] = []
    for pk, phone, country, reason in rows.order_by("pk").values_list(
            "pk", "phone", "country", "reason"):
        if reason == ExclusionReason.ALREADY:
            continue
        if reason:
            exclusions.append(Exclusion(campaign=campaign, contact_id=pk, reason=reason,
                                        created_at=now))
            answers[pk] = reason
            continue
        eligible.append((pk, phone))
        countries.add(country)
        answers[pk] = "queued"
    Exclusion.objects.bulk_create(exclusions, ignore_conflicts=True)
    if not eligible:
        return answers
    later = _reading_times(campaign, countries, now, contacts=Contact.objects.filter(
        pk__in=[pk for pk, _phone in eligible]).values("pk"))
    Send.objects.bulk_create([Send(campaign=campaign, contact_id=pk, phone=phone,
                                   created_at=now, not_before=later.get(pk))
                              for pk, phone in eligible], ignore_conflicts=True)
    if campaign.status == CampaignStatus.SENDING:
        enqueue(SEND_TASK, campaign.pk)
    return answers


# --- A/B decision and follow-ups ----------------------------------------------------------

def ab_decide(*, campaign: Campaign, now: datetime | None = None, force: bool = False) -> str:
    """Pick the winner once the decision window has passed and release the held rest.

    Returns the winner's key, or "" when it is not time yet (or nothing to decide).
    """
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
    enqueue(SEND_TASK, campaign.pk)
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




# --- Privacy: a contact's messages erased; deletion requests by message (docs/privacy.md) ---

ERASE_TASK = "crm.tasks.contact_erase_task"
CONFIRMATION_TASK = "campaigns.tasks.deletion_confirmation_send_task"


def contact_messages_erase(*, subject: Subject) -> int:
    """Anonymise the subject's sends and delete what it wrote and asked; return the rows.

    Sends stay (without number, error text or webhook payloads) so that every campaign's
    totals stay as they were; the ones still waiting are cancelled. Inbound messages,
    opt-out log entries and deletion requests go (the opt-out lives on as the salted hash
    of ``crm.models.Erasure``); exclusions hold no more than the contact's id.
    """
    sends = Send.objects.filter(contact_id=subject.contact.pk)
    sends.filter(status__in=OPEN).exclude(status=SendStatus.SENDING).update(
        status=SendStatus.CANCELLED, claim=None, error_detail="")
    touched = sends.update(phone="", error_detail="")
    touched += StatusEvent.objects.filter(send__in=sends).update(payload={})
    for model in (InboundMessage, OptOut, DeletionRequest):
        touched += model.objects.filter(contact_id=subject.contact.pk).delete()[0]
    # The sandbox's pending webhooks name the number; they are a test fixture, few.
    stale = [e.pk for e in SandboxEvent.objects.only("pk", "body").iterator()
             if subject.matches(json.dumps(e.body))]
    return touched + SandboxEvent.objects.filter(pk__in=stale).delete()[0]


def deletion_request_receive(*, contact: Contact, text: str, now: datetime | None = None,
                             words: frozenset[str] | None = None) -> str:
    """Act on a message that asks for erasure or confirms it; return what was done ("" when
    it does neither). ``words``: the deletion keywords read once for a batch
    (``deletion_words()``); read here when None.

    A deletion keyword opens a request and queues the confirmation request (sent after
    commit, through the configured backend). A confirming reply within
    ``PRIVACY_DELETION_CONFIRM_HOURS`` erases the contact, on a worker after commit.
    """
    now = now or timezone.now()
    since = now - timedelta(hours=settings.PRIVACY_DELETION_CONFIRM_HOURS)
    pending = DeletionRequest.objects.filter(contact=contact, confirmed_at__isnull=True,
                                             requested_at__gte=since).first()
    if words is None:
        words = deletion_words()
    is_keyword = bool(keyword_fold(text)) and keyword_fold(text) in words
    if pending is not None and (is_deletion_confirmation(text) or is_keyword):
        DeletionRequest.objects.filter(pk=pending.pk).update(confirmed_at=now)
        enqueue(ERASE_TASK, contact.pk, "keyword",
                "Confirmed by the customer's WhatsApp reply.")
        logger.info("contact %s confirmed erasure by message", contact.pk)
        return "erasure confirmed"
    if not is_keyword:
        return ""
    request = DeletionRequest.objects.create(contact=contact, requested_at=now)
    enqueue(CONFIRMATION_TASK, request.pk)
    logger.info("contact %s asked for erasure by keyword; confirmation queued", contact.pk)
    return "erasure requested"


def deletion_confirmation_send(*, request_id: int, backend=None) -> bool:
    """Send the confirmation request of one deletion request once; False when not sent.

    Not sent to a blocklisted number (it is never messaged): the request waits in the
    admin, where a tag administrator can erase the contact.
    """
    request = DeletionRequest.objects.select_related("contact").filter(pk=request_id).first()
    if request is None or request.confirmation_sent_at or request.contact.is_blocked:
        return False
    contact = request.contact
    with translation.override(contact.language or settings.LANGUAGE_CODE):
        text = _("You asked us to delete all data we hold about you. To confirm, reply "
                 "“%(word)s” within %(hours)d hours. If you do not, nothing is deleted.") % {
            "word": _confirm_word(contact.language),
            "hours": settings.PRIVACY_DELETION_CONFIRM_HOURS}
    own_backend = backend is None
    backend = backend or get_backend()
    try:
        backend.send_text(to=contact.phone, text=text, callback_data=f"tw:deletion:{request_id}")
    finally:
        if own_backend:
            backend.close()
    DeletionRequest.objects.filter(pk=request_id).update(confirmation_sent_at=timezone.now())
    return True


# The confirming word a request names, by the customer's language (when it is configured).
CONFIRM_WORD_BY_LANGUAGE = {"de": "JA", "zh": "是", "en": "YES"}


def _confirm_word(language: str) -> str:
    words = settings.PRIVACY_DELETION_CONFIRM_WORDS or ["YES"]
    wanted = CONFIRM_WORD_BY_LANGUAGE.get((language or "en")[:2].lower(), "YES")
    return wanted if wanted in words else words[0]


def keyword_fold(text: str) -> str:
    """A message as keywords compare it: trimmed of spaces and end marks, any case."""
    return (text or "").strip().strip(".!?。！ ").casefold()


def deletion_words() -> frozenset[str]:
    """The active deletion keywords and the setting's, folded (``keyword_fold``)."""
    words = {keyword_fold(w) for w in DeletionKeyword.objects.filter(active=True)
             .values_list("word", flat=True)}
    return frozenset(words | {keyword_fold(w) for w in settings.PRIVACY_DELETION_KEYWORDS})


def is_deletion_keyword(text: str) -> bool:
    """Whole-message match against the active deletion keywords and the setting's."""
    return bool(keyword_fold(text)) and keyword_fold(text) in deletion_words()


def is_deletion_confirmation(text: str) -> bool:
    return bool(keyword_fold(text)) and keyword_fold(text) in {
        keyword_fold(w) for w in settings.PRIVACY_DELETION_CONFIRM_WORDS}
