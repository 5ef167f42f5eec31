"""Writes for journeys: entering contacts, running their due steps, the starter journeys.

Exactly once, in one paragraph: a contact enters a journey once (``Enrollment`` is
unique per journey, contact and occurrence; inserts ignore conflicts). A due
enrollment is *claimed* by moving its ``due_at`` a lease ahead in one conditional
UPDATE, so two workers never run it at once; a worker that dies leaves it to be
claimed again when the lease is over. Each step is then done first and recorded
after: a message goes through the step's triggered campaign (one ``Send`` per
contact and campaign, ever), tags are changed idempotently, and the step's outcome
is written once (``EnrollmentStep`` unique per enrollment and position) before the
enrollment moves on conditionally. A step run again after a crash therefore sends
nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.journeys.models import (
    Enrollment,
    EnrollmentStatus,
    EnrollmentStep,
    ExitReason,
    Journey,
    JourneyStep,
    JourneyTrigger,
    Outcome,
    StepCampaign,
    StepKind,
)
from campaigns.models import Campaign, ExclusionReason
from campaigns.services import campaign_send_triggered, campaign_triggered_ensure
from campaigns.zones import country_time_zone
from crm.jobs import enqueue
from crm.models import ConsentStatus, Contact, Event
from tagging.audiences.language import SegmentError
from tagging.audiences.selectors import contact_matches, contacts_matching
from tagging.models import AssignmentHistory, Source, TagAssignment
from tagging.services import tags_change

logger = logging.getLogger(__name__)

ADVANCE_TASK = "campaigns.journeys.tasks.journeys_advance_task"
LEASE = timedelta(minutes=5)  # a claimed enrollment is free again after this
BATCH = 500
CHUNK = 5000  # contacts per entry query: well inside SQLite's variable limit


class JourneyError(ValueError):
    """A journey that cannot be saved or run as asked; the message says why."""


# --- Entering --------------------------------------------------------------------------------

def journey_enroll(*, journey: Journey, contact_ids: Iterable[int], occurrence: str = "",
                   now: datetime | None = None) -> int:
    """Let ``contact_ids`` into ``journey`` (those matching its “only for”); return how many
    entered. A contact already in (or through) the journey for ``occurrence`` is left alone.
    Set-based, in chunks (a bulk tag change may name many contacts)."""
    now = now or timezone.now()
    ids = sorted(set(contact_ids))
    if not ids or not journey.active:
        return 0
    entered = 0
    for start in range(0, len(ids), CHUNK):
        entered += _enroll_chunk(journey, ids[start:start + CHUNK], occurrence, now)
    if entered:
        enqueue(ADVANCE_TASK)
    return entered


def _enroll_chunk(journey: Journey, ids: list[int], occurrence: str, now: datetime) -> int:
    chosen = set(ids)
    if journey.audience.strip():
        try:
            chosen = set(contacts_matching(journey.audience, Contact.objects.filter(
                pk__in=ids), now).values_list("pk", flat=True))
        except SegmentError:
            logger.warning("journey %s: invalid audience, nobody enters", journey.pk)
            return 0
    chosen -= set(Enrollment.objects.filter(journey=journey, occurrence=occurrence,
                                            contact_id__in=ids).values_list("contact_id",
                                                                            flat=True))
    Enrollment.objects.bulk_create(
        [Enrollment(journey=journey, contact_id=pk, occurrence=occurrence, entered_at=now,
                    due_at=now) for pk in sorted(chosen)], batch_size=1000, ignore_conflicts=True)
    return len(chosen)


def journeys_enroll_tag_changes(*, operation, changes: list[tuple[int, int, str]],
                                now: datetime | None = None) -> int:
    """Enter contacts into journeys triggered by the tag changes ``(contact, tag, action)``."""
    entered = 0
    for journey in Journey.objects.filter(active=True, trigger__in=[
            JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED]):
        action = "added" if journey.trigger == JourneyTrigger.TAG_ADDED else "removed"
        ids = [c for c, t, a in changes if t == journey.trigger_tag_id and a == action]
        entered += journey_enroll(journey=journey, contact_ids=ids, now=now)
    return entered


def journeys_enroll_events(*, events: list[tuple[int, str]],
                           now: datetime | None = None) -> int:
    """Enter the contacts of ``events`` ``(contact, kind)`` into event-triggered journeys."""
    entered = 0
    for journey in Journey.objects.filter(active=True, trigger=JourneyTrigger.EVENT):
        ids = [c for c, kind in events if kind == journey.trigger_event_kind]
        entered += journey_enroll(journey=journey, contact_ids=ids, now=now)
    return entered


def journeys_enroll_scheduled(*, now: datetime | None = None) -> int:
    """Enter contacts who joined since a journey became active, and today's birthdays."""
    now = now or timezone.now()
    entered = 0
    for journey in Journey.objects.filter(active=True, trigger__in=[
            JourneyTrigger.JOINED, JourneyTrigger.BIRTHDAY]):
        year = str(timezone.localtime(now).year)
        candidates = entrants_today(journey, now=now, occurrence=year)
        entered += journey_enroll(
            journey=journey, contact_ids=candidates.values_list("pk", flat=True),
            occurrence=year if journey.trigger == JourneyTrigger.BIRTHDAY else "", now=now)
    return entered


def entrants_today(journey: Journey, *, now: datetime | None = None, occurrence: str = ""):
    """Contacts who would enter ``journey`` today and are not in it yet (the admin preview).

    Joined and birthday journeys: exactly who the next tick lets in. Tag and event
    journeys: who got the tag, lost it or had the event since local midnight.
    """
    now = now or timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    contacts = Contact.objects.all()
    if journey.trigger == JourneyTrigger.BIRTHDAY:
        contacts = contacts_matching("birthday_in = 0", contacts, now)
        occurrence = occurrence or str(timezone.localtime(now).year)
    elif journey.trigger == JourneyTrigger.JOINED:
        since = max(journey.active_since or now, midnight)
        contacts = contacts.filter(joined_at__gte=since, joined_at__lte=now)
        occurrence = ""
    elif journey.trigger == JourneyTrigger.EVENT:
        contacts = contacts.filter(Exists(Event.objects.filter(
            contact=OuterRef("pk"), kind=journey.trigger_event_kind, occurred_at__gte=midnight)))
        occurrence = ""
    else:
        action = "added" if journey.trigger == JourneyTrigger.TAG_ADDED else "removed"
        contacts = contacts.filter(Exists(AssignmentHistory.objects.filter(
            contact=OuterRef("pk"), tag_id=journey.trigger_tag_id, action=action,
            at__gte=midnight)))
        occurrence = ""
    if journey.audience.strip():
        try:
            contacts = contacts_matching(journey.audience, contacts, now)
        except SegmentError:
            return Contact.objects.none()
    return contacts.exclude(Exists(Enrollment.objects.filter(
        journey=journey, occurrence=occurrence, contact=OuterRef("pk"))))


def journey_activate(*, journey: Journey, active: bool = True,
                     now: datetime | None = None) -> bool:
    """Switch a journey on or off; False when it already was. Joined contacts enter from
    the moment it is switched on."""
    now = now or timezone.now()
    changed = Journey.objects.filter(pk=journey.pk).exclude(active=active).update(
        active=active, **({"active_since": now} if active else {}))
    journey.refresh_from_db()
    if changed and active:
        enqueue(ADVANCE_TASK)
    return bool(changed)


# --- Moving on -------------------------------------------------------------------------------

@dataclass
class AdvanceResult:
    runs: int = 0
    steps: int = 0
    more: bool = False


def journeys_advance(*, now: datetime | None = None, limit: int = BATCH) -> AdvanceResult:
    """Run the due steps of up to ``limit`` enrollments; ``more`` when others are waiting.

    Safe to run in parallel and to repeat: each enrollment is claimed by one caller.
    """
    now = now or timezone.now()
    result = AdvanceResult()
    due = list(Enrollment.objects.filter(
        status=EnrollmentStatus.ACTIVE, due_at__lte=now, journey__active=True,
    ).order_by("due_at", "pk").values_list("pk", "due_at")[:limit + 1])
    result.more = len(due) > limit
    steps: dict[int, list[JourneyStep]] = {}  # each journey's steps, read once a batch
    for pk, due_at in due[:limit]:
        if not Enrollment.objects.filter(pk=pk, due_at=due_at,
                                         status=EnrollmentStatus.ACTIVE).update(
                due_at=now + LEASE):
            continue  # another worker has it
        enrollment = Enrollment.objects.select_related("journey", "contact").get(pk=pk)
        if enrollment.journey_id not in steps:
            steps[enrollment.journey_id] = journey_steps(enrollment.journey)
        result.runs += 1
        result.steps += enrollment_run(enrollment=enrollment, now=now,
                                       steps=steps[enrollment.journey_id])
    return result


def journey_steps(journey: Journey) -> list[JourneyStep]:
    """The journey's steps in order, with what running them reads."""
    return list(JourneyStep.objects.filter(journey=journey).select_related(
        "template", "journey").prefetch_related("add_tags", "remove_tags").order_by("position"))


def enrollment_run(*, enrollment: Enrollment, now: datetime | None = None,
                   steps: list[JourneyStep] | None = None) -> int:
    """Run ``enrollment``'s steps until one waits or the journey ends; return steps run."""
    now = now or timezone.now()
    journey, contact = enrollment.journey, enrollment.contact
    done = 0
    for step in steps if steps is not None else journey_steps(journey):
        if step.position < enrollment.position:
            continue
        reason = exit_reason(journey, enrollment, contact, now)
        if reason:
            _finish(enrollment, EnrollmentStatus.EXITED, reason, now, step.position)
            return done
        outcome, detail, due = RUNNERS[step.kind](enrollment, step, contact, now)
        EnrollmentStep.objects.bulk_create([EnrollmentStep(
            enrollment=enrollment, position=step.position, outcome=outcome, detail=detail[:300],
            at=now)], ignore_conflicts=True)
        done += 1
        if outcome == Outcome.EXITED:
            _finish(enrollment, EnrollmentStatus.EXITED, ExitReason.CHECK_FAILED, now)
            return done
        nxt = step.position + 1
        # Until it waits, it stays leased: a stale claim by another worker cannot match.
        waits = bool(due and due > now)
        Enrollment.objects.filter(pk=enrollment.pk, position=step.position,
                                  status=EnrollmentStatus.ACTIVE).update(
            position=nxt, due_at=due if waits else now + LEASE)
        enrollment.position = nxt
        if waits:
            return done
    _finish(enrollment, EnrollmentStatus.COMPLETED, "", now)
    return done


def _finish(enrollment: Enrollment, status: str, reason: str, now: datetime,
            position: int | None = None) -> None:
    Enrollment.objects.filter(pk=enrollment.pk, status=EnrollmentStatus.ACTIVE).update(
        status=status, exit_reason=reason, finished_at=now)
    if position is not None:  # the step it left before, in the log
        EnrollmentStep.objects.bulk_create([EnrollmentStep(
            enrollment=enrollment, position=position, outcome=Outcome.EXITED,
            detail=str(ExitReason(reason).label), at=now)], ignore_conflicts=True)
    enrollment.status, enrollment.exit_reason = status, reason


def exit_reason(journey: Journey, enrollment: Enrollment, contact: Contact,
                now: datetime) -> str:
    """Why the contact leaves before its next step ("" to go on), as the journey says."""
    contact.refresh_from_db(fields=["consent_status", "is_blocked", "last_reply_at",
                                    "last_purchase_at"])
    if journey.exit_on_opt_out and (contact.is_blocked
                                    or contact.consent_status == ConsentStatus.OPTED_OUT):
        return ExitReason.OPTED_OUT
    if journey.exit_on_reply and contact.last_reply_at and (
            contact.last_reply_at > enrollment.entered_at):
        return ExitReason.REPLIED
    if journey.exit_on_purchase and contact.last_purchase_at and (
            contact.last_purchase_at > enrollment.entered_at):
        return ExitReason.PURCHASED
    if journey.exit_when_not_matching and not _still_matches(journey, contact, now):
        return ExitReason.NOT_MATCHING
    return ""


def _still_matches(journey: Journey, contact: Contact, now: datetime) -> bool:
    if journey.trigger in (JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED):
        holds = TagAssignment.objects.filter(contact=contact, tag_id=journey.trigger_tag_id
                                             ).exists()
        if holds != (journey.trigger == JourneyTrigger.TAG_ADDED):
            return False
    if journey.audience.strip():
        try:
            return contact_matches(journey.audience, contact.pk, now)
        except SegmentError:
            return False
    return True


# --- The steps: each returns (outcome, detail, due) -------------------------------------------

def contact_zone(contact: Contact) -> ZoneInfo:
    """The contact's clock: its country's zone when the country keeps one, else TIME_ZONE."""
    return ZoneInfo(country_time_zone(contact.country) or settings.TIME_ZONE)


def wait_until(step: JourneyStep, contact: Contact, now: datetime) -> datetime:
    """``now`` plus the step's delay, moved into its local-time window when it has one."""
    target = now + timedelta(days=step.wait_days, hours=step.wait_hours)
    start, end = step.window_start, step.window_end
    if start is None or end is None or start == end:
        return target
    local = target.astimezone(contact_zone(contact))
    moment = local.time().replace(tzinfo=None)
    inside = start <= moment < end if start < end else (moment >= start or moment < end)
    if inside:
        return target
    day = local.date() if moment < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=local.tzinfo)


def _wait(enrollment, step, contact, now):
    due = wait_until(step, contact, now)
    when = timezone.localtime(due, contact_zone(contact)).strftime("%Y-%m-%d %H:%M %Z")
    return Outcome.WAITING, _("until %(when)s") % {"when": when}, due


def _check(enrollment, step, contact, now):
    try:
        ok = (not step.expression.strip()
              or contact_matches(step.expression, contact.pk, now))
    except SegmentError as exc:
        return Outcome.EXITED, _("The check's expression is invalid: %(e)s") % {"e": exc}, None
    if ok:
        return Outcome.PASSED, step.expression[:300], None
    return Outcome.EXITED, _("did not match “%(expression)s”") % {
        "expression": step.expression[:200]}, None


def step_campaign(step: JourneyStep, occurrence: str = "") -> Campaign:
    """The triggered campaign a send step uses (one per step; per year for birthdays)."""
    link = StepCampaign.objects.filter(step=step, occurrence=occurrence).select_related(
        "campaign").first()
    if link is not None and link.campaign.template_id == step.template_id:
        return _reading_hour_sync(link.campaign, step.journey)
    name = _("Journey “%(journey)s” · step %(n)d") % {"journey": step.journey.name,
                                                       "n": step.position}
    campaign = campaign_triggered_ensure(name=f"{name} · {occurrence}" if occurrence else name,
                                         template=step.template, audience=step.journey.audience)
    try:
        with transaction.atomic():
            StepCampaign.objects.update_or_create(step=step, occurrence=occurrence,
                                                  defaults={"campaign": campaign})
    except IntegrityError:  # a concurrent worker linked the same campaign
        pass
    return _reading_hour_sync(campaign, step.journey)


def _reading_hour_sync(campaign: Campaign, journey: Journey) -> Campaign:
    """Give the step's campaign the journey's reading-hour option (the journey decides)."""
    wanted = (journey.send_at_reading_hour, journey.reading_window_hours)
    if (campaign.send_at_reading_hour, campaign.reading_window_hours) != wanted:
        Campaign.objects.filter(pk=campaign.pk).update(send_at_reading_hour=wanted[0],
                                                       reading_window_hours=wanted[1])
        campaign.send_at_reading_hour, campaign.reading_window_hours = wanted
    return campaign


def _send(enrollment, step, contact, now):
    if step.template_id is None:
        return Outcome.NOT_SENT, _("The step names no template."), None
    campaign = step_campaign(step, enrollment.occurrence)
    answer = campaign_send_triggered(campaign=campaign, contact=contact, now=now)
    if answer in ("queued", ""):
        return Outcome.SENT, campaign.name, None
    return Outcome.NOT_SENT, str(ExclusionReason(answer).label), None


def _tags(enrollment, step, contact, now):
    add, remove = list(step.add_tags.all()), list(step.remove_tags.all())
    tags_change(contacts=[contact.pk], add=add, remove=remove, source=Source.CAMPAIGN,
                source_ref=f"journey:{step.journey_id}")
    names = [f"+{t.name}" for t in add] + [f"−{t.name}" for t in remove]
    return Outcome.TAGGED, ", ".join(names), None


RUNNERS = {StepKind.WAIT: _wait, StepKind.CHECK: _check, StepKind.SEND: _send,
           StepKind.TAGS: _tags}


def contact_journeys_erase(*, contact_id: int) -> int:
    """Delete a contact's enrollments and their outcome logs (erasure); how many rows."""
    deleted, _by_model = Enrollment.objects.filter(contact_id=contact_id).delete()
    return deleted  # the logs go with them (cascade) and are counted


# --- Checking a journey ----------------------------------------------------------------------

def journey_problems(journey: Journey, steps: list[JourneyStep]) -> list[str]:
    """What stops the journey from working as written, in sentences (empty: nothing)."""
    problems = []
    if journey.trigger in (JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED) and (
            journey.trigger_tag_id is None):
        problems.append(_("A tag journey needs its tag."))
    if journey.trigger == JourneyTrigger.EVENT and not journey.trigger_event_kind:
        problems.append(_("An event journey needs its event kind."))
    for step in steps:
        if step.kind == StepKind.SEND and step.template_id is None:
            problems.append(_("Step %(n)d sends but names no template.") % {"n": step.position})
        if step.kind == StepKind.CHECK and not step.expression.strip():
            problems.append(_("Step %(n)d checks but has no expression.")
                            % {"n": step.position})
    return problems
