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
from django.db import IntegrityError, connection, transaction
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
from campaigns.services import campaign_send_triggered_many, campaign_triggered_ensure
from campaigns.zones import country_time_zone
from crm.jobs import enqueue
from crm.models import ConsentStatus, Contact, Event
from tagging.audiences.language import SegmentError
from tagging.audiences.selectors import contacts_matching
from tagging.models import AssignmentHistory, Source, TagAssignment
from tagging.offers.selectors import offer_eligibility_many
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
            chosen = _matching(journey.audience, ids, now)
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
#
# A batch is claimed in one statement, then walked step by step in groups: the claimed
# enrollments that stand before the same step of the same journey run it together — the
# exit checks, an expression or an offer evaluated once for the group, one tags_change,
# one triggered send for all of them, the outcome rows in one insert, and the group moved
# on in a statement or two. As before batching, each statement commits on its own and is
# idempotent (step done first, recorded after), so a worker that dies half-way through a
# group leaves nothing that a rerun after the lease would do twice.

@dataclass
class AdvanceResult:
    runs: int = 0
    steps: int = 0
    more: bool = False


@dataclass
class _Group:
    """Claimed enrollments before the same step, with what the step reads about them."""

    step: JourneyStep
    enrollments: list[Enrollment]
    contacts: dict[int, Contact]
    now: datetime


def journeys_advance(*, now: datetime | None = None, limit: int = BATCH) -> AdvanceResult:
    """Run the due steps of up to ``limit`` enrollments; ``more`` when others may be waiting.

    Safe to run in parallel and to repeat: each enrollment is claimed by one caller.
    """
    now = now or timezone.now()
    claimed = _claim(now, limit)
    result = AdvanceResult(runs=len(claimed), more=len(claimed) >= limit)
    if not claimed:
        return result
    enrollments = list(Enrollment.objects.filter(pk__in=claimed).order_by("due_at", "pk"))
    journeys = Journey.objects.in_bulk({e.journey_id for e in enrollments})
    result.steps = _walk(enrollments, now, journeys, _steps_of(journeys))
    return result


def _claim(now: datetime, limit: int) -> list[int]:
    """Lease up to ``limit`` due enrollments of active journeys in one UPDATE; their ids.

    The lease moves ``due_at`` ahead, so the rows no longer match a second claim;
    PostgreSQL's SKIP LOCKED lets concurrent claims pass each other's rows. It commits
    on its own (autocommit), so a worker that dies later leaves its rows leased.
    """
    ops = connection.ops
    table, journeys = (ops.quote_name(Enrollment._meta.db_table),
                       ops.quote_name(Journey._meta.db_table))
    skip = (" FOR UPDATE OF e SKIP LOCKED"
            if connection.features.has_select_for_update_skip_locked else "")
    at, lease = (ops.adapt_datetimefield_value(now),
                 ops.adapt_datetimefield_value(now + LEASE))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET due_at = %s WHERE status = %s AND due_at <= %s AND id IN ("
            f"SELECT e.id FROM {table} e JOIN {journeys} j ON j.id = e.journey_id"
            f" WHERE e.status = %s AND e.due_at <= %s AND j.active = %s"
            f" ORDER BY e.due_at, e.id LIMIT %s{skip}) RETURNING id",
            [lease, EnrollmentStatus.ACTIVE.value, at, EnrollmentStatus.ACTIVE.value, at, True,
             limit])
        return [row[0] for row in cursor.fetchall()]


def journey_steps(journey: Journey) -> list[JourneyStep]:
    """The journey's steps in order, with what running them reads."""
    return _steps_of({journey.pk: journey})[journey.pk]


def _steps_of(journeys: dict[int, Journey]) -> dict[int, list[JourneyStep]]:
    steps: dict[int, list[JourneyStep]] = {pk: [] for pk in journeys}
    for step in JourneyStep.objects.filter(journey_id__in=journeys).select_related(
            "template", "offer").prefetch_related("add_tags", "remove_tags").order_by(
            "journey_id", "position"):
        step.journey = journeys[step.journey_id]
        steps[step.journey_id].append(step)
    return steps


def enrollment_run(*, enrollment: Enrollment, now: datetime | None = None,
                   steps: list[JourneyStep] | None = None) -> int:
    """Run ``enrollment``'s steps until one waits or the journey ends; return steps run."""
    now = now or timezone.now()
    journey = enrollment.journey
    steps = steps if steps is not None else journey_steps(journey)
    return _walk([enrollment], now, {journey.pk: journey}, {journey.pk: steps})


def _walk(enrollments: list[Enrollment], now: datetime, journeys: dict[int, Journey],
          steps: dict[int, list[JourneyStep]]) -> int:
    """Run the enrollments' steps, a group at a time, until each waits or ends; steps run."""
    done, running = 0, enrollments
    while running:
        groups: dict[tuple[int, int], list[Enrollment]] = {}
        for enrollment in running:
            groups.setdefault((enrollment.journey_id, enrollment.position), []).append(
                enrollment)
        running = []
        for (journey_id, position), group in groups.items():
            step = next((s for s in steps[journey_id] if s.position >= position), None)
            if step is None:
                _finish(group, EnrollmentStatus.COMPLETED, "", now)
                continue
            ran, going_on = _run_group(journeys[journey_id], step, position, group, now)
            done += ran
            running += going_on
    return done


def _run_group(journey: Journey, step: JourneyStep, position: int, group: list[Enrollment],
               now: datetime) -> tuple[int, list[Enrollment]]:
    """Run ``step`` for the group; return how many ran it and those that go straight on."""
    contacts = Contact.objects.only(*CONTACT_FIELDS).in_bulk([e.contact_id for e in group])
    group = [e for e in group if e.contact_id in contacts]  # an erased contact's is gone
    reasons = _exit_reasons(journey, group, contacts, now)
    staying = [e for e in group if e.pk not in reasons]
    for reason in sorted(set(reasons.values())):
        _finish([e for e in group if reasons.get(e.pk) == reason], EnrollmentStatus.EXITED,
                reason, now, step.position)
    if not staying:
        return 0, []
    outcomes = RUNNERS[step.kind](_Group(step=step, enrollments=staying, contacts=contacts,
                                         now=now))
    EnrollmentStep.objects.bulk_create([EnrollmentStep(
        enrollment=e, position=step.position, outcome=outcomes[e.pk][0],
        detail=outcomes[e.pk][1][:300], at=now) for e in staying], ignore_conflicts=True)
    failed = [e for e in staying if outcomes[e.pk][0] == Outcome.EXITED]
    _finish(failed, EnrollmentStatus.EXITED,
            EXIT_REASONS.get(step.kind, ExitReason.CHECK_FAILED), now)
    going_on: list[Enrollment] = []
    moves: dict[datetime, list[Enrollment]] = {}
    for enrollment in staying:
        if outcomes[enrollment.pk][0] == Outcome.EXITED:
            continue
        due = outcomes[enrollment.pk][2]
        # Until it waits, it stays leased: a stale claim by another worker cannot match.
        waits = bool(due and due > now)
        moves.setdefault(due if waits else now + LEASE, []).append(enrollment)
        enrollment.position = step.position + 1
        if not waits:
            going_on.append(enrollment)
    for due, moving in moves.items():
        Enrollment.objects.filter(pk__in=[e.pk for e in moving], position=position,
                                  status=EnrollmentStatus.ACTIVE).update(
            position=step.position + 1, due_at=due)
    return len(staying), going_on


def _finish(enrollments: list[Enrollment], status: str, reason: str, now: datetime,
            position: int | None = None) -> None:
    if not enrollments:
        return
    Enrollment.objects.filter(pk__in=[e.pk for e in enrollments],
                              status=EnrollmentStatus.ACTIVE).update(
        status=status, exit_reason=reason, finished_at=now)
    if position is not None:  # the step they left before, in the log
        detail = str(ExitReason(reason).label)
        EnrollmentStep.objects.bulk_create([EnrollmentStep(
            enrollment=e, position=position, outcome=Outcome.EXITED, detail=detail, at=now)
            for e in enrollments], ignore_conflicts=True)
    for enrollment in enrollments:
        enrollment.status, enrollment.exit_reason = status, reason


CONTACT_FIELDS = ("pk", "country", "consent_status", "is_blocked", "last_reply_at",
                  "last_purchase_at")


def _exit_reasons(journey: Journey, group: list[Enrollment], contacts: dict[int, Contact],
                  now: datetime) -> dict[int, str]:
    """Enrollment id → why it leaves before its next step, as the journey says (absent: go
    on). The contacts' facts are read fresh for the group; "no longer matches" is one query
    for the tag and one for "only for"."""
    not_matching = (_not_matching(journey, [e.contact_id for e in group], now)
                    if journey.exit_when_not_matching and group else set())
    reasons = {}
    for enrollment in group:
        contact = contacts[enrollment.contact_id]
        if journey.exit_on_opt_out and (contact.is_blocked
                                        or contact.consent_status == ConsentStatus.OPTED_OUT):
            reasons[enrollment.pk] = ExitReason.OPTED_OUT
        elif journey.exit_on_reply and contact.last_reply_at and (
                contact.last_reply_at > enrollment.entered_at):
            reasons[enrollment.pk] = ExitReason.REPLIED
        elif journey.exit_on_purchase and contact.last_purchase_at and (
                contact.last_purchase_at > enrollment.entered_at):
            reasons[enrollment.pk] = ExitReason.PURCHASED
        elif contact.pk in not_matching:
            reasons[enrollment.pk] = ExitReason.NOT_MATCHING
    return reasons


def _not_matching(journey: Journey, ids: list[int], now: datetime) -> set[int]:
    """Of ``ids``, the contacts that no longer hold (or hold again) the journey's tag or no
    longer match its "only for"."""
    left: set[int] = set()
    if journey.trigger in (JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED):
        holders = set(TagAssignment.objects.filter(
            contact_id__in=ids, tag_id=journey.trigger_tag_id).values_list("contact_id",
                                                                           flat=True))
        wanted = journey.trigger == JourneyTrigger.TAG_ADDED
        left |= {pk for pk in ids if (pk in holders) != wanted}
    if journey.audience.strip():
        try:
            left |= set(ids) - _matching(journey.audience, ids, now)
        except SegmentError:
            return set(ids)
    return left


def _matching(expression: str, ids: list[int], now: datetime) -> set[int]:
    """Of ``ids``, those matching ``expression``: one query for the whole group."""
    return set(contacts_matching(expression, Contact.objects.filter(pk__in=ids), now)
               .values_list("pk", flat=True))


# --- The steps: each takes a group and returns {enrollment: (outcome, detail, due)} -----------

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


def _wait(group: _Group) -> dict:
    answers = {}
    for enrollment in group.enrollments:
        contact = group.contacts[enrollment.contact_id]
        due = wait_until(group.step, contact, group.now)
        when = timezone.localtime(due, contact_zone(contact)).strftime("%Y-%m-%d %H:%M %Z")
        answers[enrollment.pk] = (Outcome.WAITING, _("until %(when)s") % {"when": when}, due)
    return answers


def _check(group: _Group) -> dict:
    expression = group.step.expression
    ids = [e.contact_id for e in group.enrollments]
    try:
        passed = _matching(expression, ids, group.now) if expression.strip() else set(ids)
    except SegmentError as exc:
        failed = (Outcome.EXITED, _("The check's expression is invalid: %(e)s") % {"e": exc},
                  None)
        return dict.fromkeys((e.pk for e in group.enrollments), failed)
    did_not = (Outcome.EXITED, _("did not match “%(expression)s”") % {
        "expression": expression[:200]}, None)
    return {e.pk: (Outcome.PASSED, expression[:300], None) if e.contact_id in passed
            else did_not for e in group.enrollments}


def _check_offer(group: _Group) -> dict:
    offer = group.step.offer
    if offer is None:
        failed = (Outcome.EXITED, _("The step names no offer."), None)
        return dict.fromkeys((e.pk for e in group.enrollments), failed)
    answers = offer_eligibility_many(offer, [e.contact_id for e in group.enrollments], group.now)
    passed = _("may use the offer “%(offer)s”") % {"offer": offer.name}
    return {e.pk: (Outcome.PASSED, passed, None) if answers[e.contact_id].eligible
            else (Outcome.EXITED, answers[e.contact_id].reason, None)
            for e in group.enrollments}


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


def _send(group: _Group) -> dict:
    if group.step.template_id is None:
        unsent = (Outcome.NOT_SENT, _("The step names no template."), None)
        return dict.fromkeys((e.pk for e in group.enrollments), unsent)
    answers = {}
    for occurrence in sorted({e.occurrence for e in group.enrollments}):
        campaign = step_campaign(group.step, occurrence)
        mine = [e for e in group.enrollments if e.occurrence == occurrence]
        sent = campaign_send_triggered_many(campaign=campaign,
                                            contact_ids=[e.contact_id for e in mine],
                                            now=group.now)
        for enrollment in mine:
            answer = sent.get(enrollment.contact_id, "")
            answers[enrollment.pk] = (
                (Outcome.SENT, campaign.name, None) if answer in ("queued", "")
                else (Outcome.NOT_SENT, str(ExclusionReason(answer).label), None))
    return answers


def _tags(group: _Group) -> dict:
    step = group.step
    add, remove = list(step.add_tags.all()), list(step.remove_tags.all())
    tags_change(contacts=[e.contact_id for e in group.enrollments], add=add, remove=remove,
                source=Source.CAMPAIGN, source_ref=f"journey:{step.journey_id}")
    names = ", ".join([f"+{t.name}" for t in add] + [f"−{t.name}" for t in remove])
    return {e.pk: (Outcome.TAGGED, names, None) for e in group.enrollments}


RUNNERS = {StepKind.WAIT: _wait, StepKind.CHECK: _check, StepKind.SEND: _send,
           StepKind.TAGS: _tags, StepKind.OFFER: _check_offer}
# Why an enrollment leaves when its step says no.
EXIT_REASONS = {StepKind.CHECK: ExitReason.CHECK_FAILED, StepKind.OFFER: ExitReason.NOT_ELIGIBLE}


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
        if step.kind == StepKind.OFFER and step.offer_id is None:
            problems.append(_("Step %(n)d checks an offer but names none.")
                            % {"n": step.position})
    return problems
