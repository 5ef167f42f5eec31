"""Reads for journeys: the report (entered, per step, sent, delivered, read, replied,
converted, left and why) and the preview of who would enter today."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Max, Q
from django.utils import timezone

from campaigns.journeys.models import (
    Enrollment,
    EnrollmentStatus,
    EnrollmentStep,
    ExitReason,
    Journey,
    JourneyStep,
    Outcome,
    StepCampaign,
    StepKind,
)
from campaigns.journeys.services import entrants_today
from campaigns.models import Campaign, Send
from campaigns.selectors import counts
from tagging.audiences.language import note_use, tags_used_by


def journey_campaigns(journey: Journey, step: JourneyStep | None = None):
    """The triggered campaigns of the journey's send steps (birthday years included)."""
    links = StepCampaign.objects.filter(step__journey=journey)
    if step is not None:
        links = links.filter(step=step)
    return Campaign.objects.filter(pk__in=links.values("campaign_id"))


def journey_report(journey: Journey) -> dict:
    """Entered, in the journey, completed, left by reason; per step reached, waiting there and
    outcomes; and the messages' sent, delivered, read, replied and converted (campaigns'
    ``counts``, with their thresholds as flags)."""
    enrollments = Enrollment.objects.filter(journey=journey)
    by_status = dict(enrollments.values_list("status").annotate(n=Count("id")).order_by()
                     .values_list("status", "n"))
    left = dict(enrollments.filter(status=EnrollmentStatus.EXITED).values_list("exit_reason")
                .annotate(n=Count("id")).order_by().values_list("exit_reason", "n"))
    outcomes: dict[int, dict[str, int]] = {}
    for position, outcome, n in (EnrollmentStep.objects.filter(enrollment__journey=journey)
                                 .values_list("position", "outcome").annotate(n=Count("id"))
                                 .order_by().values_list("position", "outcome", "n")):
        outcomes.setdefault(position, {})[outcome] = n
    waiting = dict(enrollments.filter(status=EnrollmentStatus.ACTIVE).values_list("position")
                   .annotate(n=Count("id")).order_by().values_list("position", "n"))
    steps = []
    for step in JourneyStep.objects.filter(journey=journey).order_by("position"):
        done = outcomes.get(step.position, {})
        row = {"position": step.position, "kind": step.get_kind_display(),
               "reached": sum(done.values()), "waiting_before": waiting.get(step.position, 0),
               "outcomes": {str(Outcome(k).label): v for k, v in done.items()}}
        if step.kind == StepKind.SEND:
            row["messages"] = counts(Send.objects.filter(
                campaign__in=journey_campaigns(journey, step)))
        steps.append(row)
    return {
        "entered": sum(by_status.values()),
        "active": by_status.get(EnrollmentStatus.ACTIVE, 0),
        "completed": by_status.get(EnrollmentStatus.COMPLETED, 0),
        "exited": by_status.get(EnrollmentStatus.EXITED, 0),
        "left": {str(ExitReason(k).label) if k else "": v for k, v in left.items()},
        "steps": steps,
        "messages": counts(Send.objects.filter(campaign__in=journey_campaigns(journey))),
    }


def journey_preview(journey: Journey, *, now: datetime | None = None, sample: int = 10
                    ) -> tuple[int, list]:
    """How many contacts would enter today, and the first few of them."""
    contacts = entrants_today(journey, now=now or timezone.now())
    return contacts.count(), list(contacts.order_by("pk")[:sample])


def contact_journeys_export(contact) -> list[dict]:
    """The journeys a contact walked, with each step's outcome (privacy export)."""
    rows = []
    for enrollment in Enrollment.objects.filter(contact=contact).select_related(
            "journey").prefetch_related("log").order_by("entered_at", "pk"):
        rows.append({
            "journey": enrollment.journey.name, "occurrence": enrollment.occurrence,
            "status": enrollment.status, "entered_at": enrollment.entered_at.isoformat(),
            "finished_at": enrollment.finished_at.isoformat() if enrollment.finished_at else None,
            "left_because": enrollment.exit_reason,
            "steps": [{"step": s.position, "outcome": s.outcome, "detail": s.detail,
                       "at": s.at.isoformat()} for s in enrollment.log.all()]})
    return rows


def journey_tags_last_used(*, since: datetime) -> dict[int, datetime]:
    """Insight usage: tags a journey names in its trigger, "only for" or steps.

    An active journey uses them now; an inactive one at its last enrollment
    activity (contacts entering or leaving), when that was since ``since``.
    A few queries: journeys, steps, their tag lists, the vocabulary.
    """
    now = timezone.now()
    rows = list(Journey.objects.annotate(
        entered=Max("enrollments__entered_at"), finished=Max("enrollments__finished_at"),
    ).filter(Q(active=True) | Q(entered__gte=since) | Q(finished__gte=since)).values_list(
        "pk", "active", "entered", "finished", "trigger_tag_id", "audience"))
    at, expressions = {}, []
    for pk, active, entered, finished, _tag, audience in rows:
        at[pk] = now if active else max(d for d in (entered, finished) if d is not None)
        expressions.append((audience, at[pk]))
    steps = list(JourneyStep.objects.filter(journey_id__in=at).values_list(
        "pk", "journey_id", "expression"))
    expressions += [(text, at[journey_id]) for _pk, journey_id, text in steps]
    latest = tags_used_by(expressions)
    for pk, _active, _entered, _finished, tag_id, _audience in rows:
        note_use(latest, (tag_id,), at[pk])
    step_journey = {pk: journey_id for pk, journey_id, _text in steps}
    for through in (JourneyStep.add_tags.through, JourneyStep.remove_tags.through):
        pairs = through.objects.filter(journeystep_id__in=step_journey).values_list(
            "journeystep_id", "tag_id")
        for step_id, tag_id in pairs:
            note_use(latest, (tag_id,), at[step_journey[step_id]])
    return latest
