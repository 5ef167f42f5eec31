"""Running, previewing, saving and checking rules.

A run is *plan, then apply*. The plan evaluates, against the current state,
one query per tag the rule touches: which contacts would gain it, lose it, or
lose a rival tag of a single-choice dimension. Applying hands exactly those
contact ids to ``tags_change`` (one operation id for the whole run, so the run
can be undone). A preview is the plan without the apply, which is why a
preview and the real run that follows agree.

Safety:
- A run holds a row lock on its rule (``select_for_update``; SQLite serialises
  writers anyway), and plans inside the lock. A second run of the same rule
  waits, then plans against the first run's result and finds nothing to do.
- ``tags_change`` itself is idempotent (``ON CONFLICT DO NOTHING`` for adds,
  ``DELETE … RETURNING`` for removals), so even runs of different rules that
  touch the same tags never double an assignment or its history.
- In one run of several rules (``rules_run``, and the rules fired by one
  batch of events) rules go by priority, highest first, and a rule never
  reverses, on the same contact, a tag decision of a rule before it: no
  contact flaps within a run.
"""

from __future__ import annotations

import json
import logging
import string
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from pyroaring import BitMap

from crm.metrics import JOB_SECONDS
from crm.models import Contact, Event
from tagging.audiences.language import SegmentError, parse
from tagging.audiences.selectors import contacts_matching
from tagging.audiences.sql import to_q
from tagging.models import Dimension, Source, Tag, TagAssignment
from tagging.names import name_key
from tagging.permissions import TagPermissionDenied
from tagging.rules.models import Rule, RuleRun, RuleTrigger, RunTrigger
from tagging.services import TagChangeError, tags_change

log = logging.getLogger(__name__)

TASK_NAME = "tagging.rules.tasks.rule_run_task"
RULE_JOB = "rule"  # a scheduled run as a long job (crm.jobs), registered in RulesConfig.ready()
SAMPLE_SIZE = 10
# Up to this many matched contacts a plan probes each tag for them; above, it reads the
# tag's holders whole (one index-only scan), cheaper than probing each contact.
PROBE_LIMIT = 50_000
EVENT_PLACEHOLDERS = {"date", "product", "category", "name", "amount", "currency"}
SCHEDULE_PLACEHOLDERS = {"date"}
# Errors a run records and survives; anything else is a bug and should surface.
RUN_ERRORS = (SegmentError, TagChangeError, TagPermissionDenied, ValueError)

ADD, REMOVE, REPLACE = "add", "remove", "replace"


# --- Results ---------------------------------------------------------------------------------


@dataclass
class Step:
    """One tag and the contacts that would gain (add) or lose (remove/replace) it."""

    action: str
    tag_name: str
    tag: Tag | None  # None: a tag from a template, created when the run applies
    contact_ids: list[int]
    dimension: Dimension | None = None
    sync: bool = False  # a removal from holders who no longer match

    def as_dict(self, sample: list[dict] | None = None) -> dict:
        data = {"action": self.action, "tag": self.tag_name, "count": len(self.contact_ids)}
        if sample is not None:
            data["sample"] = sample
        return data


@dataclass
class RuleOutcome:
    rule_id: int
    rule: str
    matched: int = 0
    added: int = 0
    removed: int = 0
    steps: list[Step] = field(default_factory=list)
    errors: str = ""
    duration_ms: int = 0
    dry_run: bool = False
    operation: uuid.UUID | None = None
    run_id: int | None = None

    def as_dict(self) -> dict:
        return {"rule": self.rule, "rule_id": self.rule_id, "matched": self.matched,
                "added": self.added, "removed": self.removed, "dry_run": self.dry_run,
                "duration_ms": self.duration_ms, "errors": self.errors,
                "changes": [s.as_dict() for s in self.steps if s.contact_ids]}


@dataclass
class RunContext:
    """Shared by the rules of one run: which tag decisions earlier rules made, for whom.

    ``claims[(tag_id, direction)]`` holds the contacts for which a rule of
    higher priority decided ``tag_id`` in ``direction`` (add or remove);
    a later rule skips the opposite change for them. Only recorded for tags a
    later rule of the run touches in the opposite direction.
    """

    watch: set[tuple[int, str]] = field(default_factory=set)
    claims: dict[tuple[int, str], set[int]] = field(default_factory=lambda: defaultdict(set))


# --- Reading a rule ------------------------------------------------------------------------


def _add_tags(rule: Rule) -> list[Tag]:
    return list(rule.add_tags.select_related("dimension"))


def _remove_tags(rule: Rule, adding: Sequence[Tag]) -> list[Tag]:
    tags = {t.pk: t for t in rule.remove_tags.select_related("dimension")}
    if rule.remove_dimension_id:
        tags.update({t.pk: t for t in Tag.objects.select_related("dimension")
                     .filter(dimension_id=rule.remove_dimension_id)})
    for tag in adding:
        tags.pop(tag.pk, None)
    return list(tags.values())


def _rivals(tag: Tag) -> list[int]:
    if not tag.dimension.single_choice:
        return []
    return list(Tag.objects.filter(dimension_id=tag.dimension_id).exclude(pk=tag.pk)
                .values_list("pk", flat=True))


def _directions(rule: Rule) -> set[tuple[int, str]]:
    """(tag id, add/remove) pairs the rule can change; single-choice rivals count as removed."""
    adding = _add_tags(rule)
    pairs = {(t.pk, ADD) for t in adding}
    pairs |= {(t.pk, REMOVE) for t in _remove_tags(rule, adding)}
    pairs |= {(pk, REMOVE) for t in adding for pk in _rivals(t)}
    if rule.sync:
        pairs |= {(t.pk, REMOVE) for t in adding}
    return pairs


def _opposite(direction: str) -> str:
    return REMOVE if direction == ADD else ADD


def _who(rule: Rule, base: QuerySet[Contact], now: datetime) -> QuerySet[Contact]:
    expression = (rule.segment or "").strip()
    return contacts_matching(expression, queryset=base, now=now) if expression else base


# --- Templates -------------------------------------------------------------------------------


class _Values(dict):
    def __missing__(self, key):
        raise ValueError(_("unknown placeholder {%(key)s}") % {"key": key})


def template_fields(template: str) -> set[str]:
    """Placeholder names in ``template``; raise ValueError when it is malformed."""
    try:
        return {name for _text, name, _spec, _conv in string.Formatter().parse(template)
                if name is not None}
    except ValueError as exc:
        raise ValueError(_("the tag name template is malformed: %(e)s") % {"e": exc}) from None


def template_render(template: str, *, when: datetime, product: str = "", category: str = "",
                    name: str = "", amount: Decimal | None = None, currency: str = "") -> str:
    """The tag name for one event (or run); {date} is the local date, {date:%Y-%m} formats it."""
    local: date = timezone.localtime(when).date() if timezone.is_aware(when) else when.date()
    values = _Values(date=local, product=product, category=category, name=name,
                     amount="" if amount is None else f"{amount:.2f}", currency=currency)
    rendered = string.Formatter().vformat(template, (), values)
    return " ".join(rendered.split())[:120]


def _template_tag(name: str, dimension: Dimension, cache: dict[str, Tag | None],
                  create: bool) -> Tag | None:
    """The tag called ``name`` (any dimension), created in ``dimension`` when ``create``."""
    if dimension is None:
        raise ValueError(_("Choose the dimension new tags are created in."))
    key = name_key(name)
    if key in cache and (cache[key] is not None or not create):
        return cache[key]
    tag = Tag.objects.select_related("dimension").filter(name_key=key).first()
    if tag is None and create:
        if dimension.is_archived:
            raise ValueError(
                _("The dimension “%(dimension)s” for new tags is archived; restore it or "
                  "choose another.") % {"dimension": dimension.name})
        try:
            with transaction.atomic():
                tag = Tag(dimension=dimension, name=name, kind="dynamic")
                tag.save()
        except IntegrityError:  # a concurrent run created it first
            tag = Tag.objects.select_related("dimension").get(name_key=key)
    cache[key] = tag
    return tag


# --- Planning --------------------------------------------------------------------------------


def _matching(queryset: QuerySet[Contact]) -> BitMap:
    """The ids ``queryset`` selects, read once: one statement, no model instances."""
    sql, params = queryset.order_by().values_list("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return BitMap(row[0] for row in cursor.fetchall())


class _Holders:
    """Who holds a tag, read once per plan.

    A small audience (up to ``PROBE_LIMIT`` contacts: an event rule's batch, a
    narrow scheduled rule) is probed for the tag through the (tag, contact)
    index; otherwise the tag's holders are read whole, one index-only scan,
    which for a large audience beats probing each contact. Tags in ``whole``
    (those a sync removal takes from holders outside the audience) are always
    read whole. Steps only ever intersect or subtract within the audience, so
    a probed answer, limited to it, gives the same steps.
    """

    def __init__(self, matched: BitMap, whole: frozenset[int] = frozenset()):
        self.matched, self.whole = matched, whole
        self.known: dict[int, BitMap] = {}

    def __call__(self, tag_id: int) -> BitMap:
        if tag_id not in self.known:
            if tag_id in self.whole or len(self.matched) > PROBE_LIMIT:
                self.known[tag_id] = self._read(tag_id, None)
            else:
                self.known[tag_id] = self._read(tag_id, list(self.matched)) if self.matched \
                    else BitMap()
        return self.known[tag_id]

    @staticmethod
    def _read(tag_id: int, among: list[int] | None) -> BitMap:
        found = BitMap()
        table = connection.ops.quote_name(TagAssignment._meta.db_table)
        sql, params = f"SELECT contact_id FROM {table} WHERE tag_id = %s", [tag_id]
        if among is not None and connection.vendor != "postgresql":
            for start in range(0, len(among), 5000):
                found.update(TagAssignment.objects.filter(
                    tag_id=tag_id, contact_id__in=among[start:start + 5000])
                    .values_list("contact_id", flat=True))
            return found
        if among is not None:
            sql += " AND contact_id = ANY(%s::bigint[])"
            params.append("{" + ",".join(map(str, among)) + "}")
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found.update(row[0] for row in cursor.fetchall())
        return found


def _tag_steps(matching: BitMap, adding: list[Tag], removing: list[Tag],
               new_tags: dict[str, tuple[Tag | None, BitMap]],
               dimension: Dimension | None, count_replacements: bool,
               holders: _Holders) -> list[Step]:
    """Steps for fixed tags on ``matching`` and template tags on their own contact sets.

    Replacements (a rival of a single-choice tag) are counted for previews and
    dry runs only; a real run learns them from ``tags_change``.
    """
    steps = [Step(REMOVE, t.name, t, list(matching & holders(t.pk))) for t in removing]
    removed = {t.pk for t in removing}
    targets = [(t.name, t, matching) for t in adding]
    targets += [(name, tag, ids) for name, (tag, ids) in new_tags.items()]
    for name, tag, contacts in targets:
        if tag is None:
            steps.append(Step(ADD, name, None, list(contacts), dimension=dimension))
            continue
        lacking = contacts - holders(tag.pk)
        steps.append(Step(ADD, name, tag, list(lacking)))
        for rival in Tag.objects.filter(pk__in=[pk for pk in _rivals(tag) if pk not in removed]):
            ids = list(lacking & holders(rival.pk)) if count_replacements else []
            steps.append(Step(REPLACE, rival.name, rival, ids))
    return steps


def _event_filter(rule: Rule, event_ids: Sequence[int]) -> QuerySet[Event]:
    events = Event.objects.filter(pk__in=list(event_ids), kind=rule.event_kind)
    if rule.event_name:
        events = events.filter(name__iexact=rule.event_name)
    if rule.event_product:
        events = events.filter(product__iexact=rule.event_product)
    if rule.event_category:
        events = events.filter(category__iexact=rule.event_category)
    if rule.event_min_amount is not None:
        events = events.filter(amount__gte=rule.event_min_amount)
    return events


def _plan(rule: Rule, *, now: datetime, event_ids: Sequence[int] | None,
          create_tags: bool, count_replacements: bool = True
          ) -> tuple[BitMap, int, list[Step]]:
    """(matched ids, matched count, steps) for ``rule`` against the current state.

    The audience is read once (one statement) and each tag's holders once; the
    steps are set differences of those in memory, so a tag's assignments are
    never read twice and the audience's expression is evaluated once per run.
    """
    adding = _add_tags(rule)
    removing = _remove_tags(rule, adding)
    dimension = rule.template_dimension
    cache: dict[str, Tag | None] = {}
    new_tags: dict[str, tuple[Tag | None, BitMap]] = {}
    if event_ids is not None:
        events = list(_event_filter(rule, event_ids).values(
            "contact_id", "occurred_at", "product", "category", "name", "amount", "currency"))
        base = Contact.objects.filter(pk__in={e["contact_id"] for e in events})
        matched = _matching(_who(rule, base, now))
        if rule.add_template:
            groups: dict[str, BitMap] = defaultdict(BitMap)
            for event in events:
                if event["contact_id"] in matched:
                    when = event.pop("occurred_at")
                    contact_id = event.pop("contact_id")
                    name = template_render(rule.add_template, when=when, **event)
                    if name:
                        groups[name].add(contact_id)
            for name, ids in groups.items():
                tag = _template_tag(name, dimension, cache, create_tags)
                new_tags[name] = (tag, ids)
        holders = _Holders(matched)
    else:
        matched = _matching(_who(rule, Contact.objects.all(), now))
        if rule.add_template:
            name = template_render(rule.add_template, when=now)
            new_tags[name] = (_template_tag(name, dimension, cache, create_tags), matched)
        synced = adding + [t for t, _ids in new_tags.values() if t is not None]
        holders = _Holders(matched, frozenset(t.pk for t in synced) if rule.sync else frozenset())
    steps = _tag_steps(matched, adding, removing, new_tags, dimension, count_replacements,
                       holders)
    if rule.sync and event_ids is None:
        # Holders who no longer match lose the tag (e.g. "Geburtstag bald" after the day).
        for tag in adding + [t for t, _ids in new_tags.values() if t is not None]:
            steps.insert(0, Step(REMOVE, tag.name, tag, list(holders(tag.pk) - matched),
                                 sync=True))
    return matched, len(matched), steps


def _direction(step: Step) -> str:
    return ADD if step.action == ADD else REMOVE


def _apply_claims(steps: list[Step], context: RunContext | None, matched: BitMap) -> None:
    """Drop changes that would undo an earlier rule's decision; record this rule's claims.

    A rule decides a tag for every contact it matched (they all end up with or
    without it), not only for those it changed; a sync removal decides it for
    the holders it removes it from.
    """
    if context is None or not context.watch:
        return
    for step in steps:
        if step.tag is None:
            continue
        blocked = set(context.claims.get((step.tag.pk, _opposite(_direction(step))), ()))
        if step.action == ADD:
            # Adding a single-choice tag also takes away its rivals: respect their claims.
            for rival in _rivals(step.tag):
                blocked |= context.claims.get((rival, ADD), set())
        if blocked:
            step.contact_ids = [i for i in step.contact_ids if i not in blocked]
    for step in steps:
        key = (step.tag.pk, _direction(step)) if step.tag is not None else None
        if key not in context.watch:
            continue
        context.claims[key].update(step.contact_ids if step.sync else matched)


# --- Running ---------------------------------------------------------------------------------


def _sample(steps: list[Step]) -> dict[int, dict]:
    wanted = {i for s in steps for i in s.contact_ids[:SAMPLE_SIZE]}
    return {c.pk: {"id": c.pk, "phone": c.phone, "name": c.display_name}
            for c in Contact.objects.filter(pk__in=wanted)}


def rule_preview(*, rule: Rule, now: datetime | None = None,
                 event_ids: Sequence[int] | None = None) -> dict:
    """What ``rule`` would do now — counts and a sample per tag — changing nothing.

    For an event rule, pass the events to replay (default: its kind's events of
    the last 24 hours, at most 1,000).
    """
    now = now or timezone.now()
    if rule.trigger == RuleTrigger.EVENT and event_ids is None:
        event_ids = list(Event.objects.filter(kind=rule.event_kind,
                                              occurred_at__gte=now - timedelta(days=1))
                         .order_by("-occurred_at").values_list("pk", flat=True)[:1000])
    _matched, count, steps = _plan(rule, now=now, event_ids=event_ids, create_tags=False)
    people = _sample(steps)
    return {
        "rule": rule.name, "matched": count,
        "added": sum(len(s.contact_ids) for s in steps if s.action == ADD),
        "removed": sum(len(s.contact_ids) for s in steps if s.action != ADD),
        "events": None if event_ids is None else len(event_ids),
        "changes": [s.as_dict([people[i] for i in s.contact_ids[:SAMPLE_SIZE]])
                    for s in steps if s.contact_ids],
    }


def rule_run(*, rule: Rule, trigger: str = RunTrigger.MANUAL, now: datetime | None = None,
             event_ids: Sequence[int] | None = None, dry_run: bool = False,
             context: RunContext | None = None, actor=None) -> RuleOutcome:
    """Run ``rule`` once (for ``event_ids`` if it is an event rule) and log the run.

    Idempotent: a second run with nothing new changes nothing. A dry run plans
    only and is not logged. Errors of the rule itself (a bad segment, an
    archived tag) are logged on the run and returned, not raised.
    """
    now = now or timezone.now()
    outcome = RuleOutcome(rule.pk, rule.name, dry_run=dry_run)
    started = time.monotonic()
    try:
        if rule.trigger == RuleTrigger.EVENT and event_ids is None:
            # Without its events, an event rule would act on its whole audience.
            raise ValueError(_("“%(rule)s” runs when its events arrive; preview it instead.")
                             % {"rule": rule.name})
        with transaction.atomic():
            if not dry_run:
                Rule.objects.select_for_update().filter(pk=rule.pk).first()
            matched, outcome.matched, outcome.steps = _plan(
                rule, now=now, event_ids=event_ids, create_tags=not dry_run,
                count_replacements=dry_run)
            _apply_claims(outcome.steps, context, matched)
            if not dry_run:
                outcome.operation = uuid.uuid4()
                _apply(rule, outcome, now, actor)
            else:
                outcome.added = sum(len(s.contact_ids) for s in outcome.steps if s.action == ADD)
                outcome.removed = sum(len(s.contact_ids) for s in outcome.steps
                                      if s.action != ADD)
    except RUN_ERRORS as exc:
        outcome.errors = getattr(exc, "message", None) or str(exc)
        log.warning("rule %s failed: %s", rule.pk, outcome.errors)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    if not dry_run:
        JOB_SECONDS.labels(kind="rule_run", outcome="error" if outcome.errors else "ok"
                           ).observe(time.monotonic() - started)
        run = RuleRun.objects.create(
            rule=rule, started_at=now, trigger=trigger, matched=outcome.matched,
            added=outcome.added, removed=outcome.removed, duration_ms=outcome.duration_ms,
            errors=outcome.errors, operation=outcome.operation, actor=actor,
            details={"changes": [s.as_dict() for s in outcome.steps if s.contact_ids]},
        )
        outcome.run_id = run.pk
    return outcome


def rule_run_give_up(rule_id: int, attempts: int) -> None:
    """The worker of a scheduled run died ``attempts`` times (``crm.jobs``): log a failed
    run, so the rule's page says so (the run is one transaction: nothing was applied)."""
    rule = Rule.objects.filter(pk=rule_id).first()
    if rule is not None:
        RuleRun.objects.create(rule=rule, trigger=RunTrigger.SCHEDULE, errors=_(
            "The worker running this rule stopped %(attempts)d times; nothing was changed and "
            "the run was not tried again. The rule runs again at its next scheduled time.")
            % {"attempts": attempts})


def _apply(rule: Rule, outcome: RuleOutcome, now: datetime, actor) -> None:
    expires_at = now + timedelta(days=rule.expires_after_days) if rule.expires_after_days \
        else None
    common = {"source": Source.RULE, "source_ref": f"rule:{rule.pk}", "actor": actor,
              "operation": outcome.operation}
    for step in outcome.steps:
        if not step.contact_ids or step.action == REPLACE:
            continue  # replacements happen inside the add of their rival
        if step.action == REMOVE:
            outcome.removed += tags_change(contacts=step.contact_ids, remove=[step.tag],
                                           **common).removed
            continue
        tag = step.tag or Tag.objects.select_related("dimension").get(name_key=name_key(
            step.tag_name))
        result = tags_change(contacts=step.contact_ids, add=[tag], expires_at=expires_at,
                             **common)
        outcome.added += result.added
        outcome.removed += result.replaced


def rules_ordered(queryset: QuerySet[Rule] | None = None) -> list[Rule]:
    queryset = Rule.objects.all() if queryset is None else queryset
    return list(queryset.order_by("-priority", "name", "pk"))


def _context_for(rules: Sequence[Rule]) -> RunContext:
    """Watch the (tag, direction) pairs that a later rule of the run reverses."""
    context = RunContext()
    later: set[tuple[int, str]] = set()
    for rule in reversed(rules):
        mine = _directions(rule)
        context.watch |= {(tag, d) for tag, d in mine if (tag, _opposite(d)) in later}
        later |= mine
    return context


def rules_run(*, rules: Sequence[Rule] | None = None, trigger: str = RunTrigger.SCHEDULE,
              now: datetime | None = None, dry_run: bool = False,
              actor=None) -> list[RuleOutcome]:
    """Run scheduled ``rules`` (default: all enabled scheduled rules) by priority, in one run."""
    if rules is None:
        rules = rules_ordered(Rule.objects.filter(enabled=True, trigger=RuleTrigger.SCHEDULE))
    now = now or timezone.now()
    context = _context_for(rules)
    return [rule_run(rule=rule, trigger=trigger, now=now, dry_run=dry_run, context=context,
                     actor=actor) for rule in rules]


def rules_apply_to_events(*, event_ids: Sequence[int],
                          now: datetime | None = None) -> list[RuleOutcome]:
    """Run every enabled event rule whose kind is among ``event_ids``' events, by priority."""
    kinds = set(Event.objects.filter(pk__in=list(event_ids)).values_list("kind", flat=True))
    rules = rules_ordered(Rule.objects.filter(enabled=True, trigger=RuleTrigger.EVENT,
                                              event_kind__in=kinds))
    context = _context_for(rules)
    outcomes = []
    for rule in rules:
        outcome = rule_run(rule=rule, trigger=RunTrigger.EVENT, now=now, event_ids=event_ids,
                           context=context)
        outcomes.append(outcome)
    return outcomes


# --- Saving, schedules, conflicts ---------------------------------------------------------------


def rule_validate(rule: Rule, add_tags: Sequence[Tag] = (), remove_tags: Sequence[Tag] = ()
                  ) -> dict[str, str]:
    """Problems a person must fix before the rule can be saved, by field."""
    problems: dict[str, str] = {}
    if rule.segment.strip():
        try:
            parse(rule.segment)
        except SegmentError as exc:
            problems["segment"] = str(exc)
    if rule.trigger == RuleTrigger.EVENT and not rule.event_kind:
        problems["event_kind"] = _("Choose the event kind that triggers the rule.")
    if rule.trigger == RuleTrigger.SCHEDULE and rule.schedule_every and rule.schedule_crontab:
        problems["schedule_crontab"] = _("Give either “every” or a crontab, not both.")
    if rule.add_template:
        allowed = EVENT_PLACEHOLDERS if rule.trigger == RuleTrigger.EVENT \
            else SCHEDULE_PLACEHOLDERS
        try:
            unknown = template_fields(rule.add_template) - allowed
            if not unknown:
                template_render(rule.add_template, when=timezone.now(), product="x")
        except ValueError as exc:
            problems["add_template"] = str(exc)
        else:
            if unknown:
                problems["add_template"] = _("Unknown placeholders: %(p)s. Use %(a)s.") % {
                    "p": ", ".join(sorted(unknown)),
                    "a": ", ".join(f"{{{a}}}" for a in sorted(allowed))}
        if rule.template_dimension_id is None:
            problems["template_dimension"] = _("Choose the dimension new tags are created in.")
        elif Dimension.objects.filter(pk=rule.template_dimension_id, is_archived=True).exists():
            problems["template_dimension"] = _(
                "This dimension is archived; no tags can be created in it. Restore it or "
                "choose another.")
    both = {t.name for t in add_tags} & {t.name for t in remove_tags}
    if both:
        problems["remove_tags"] = _("A rule cannot add and remove the same tag: %(t)s.") % {
            "t": ", ".join(sorted(both))}
    return problems


def rule_save(*, rule: Rule, add_tags: Sequence[Tag] | None = None,
              remove_tags: Sequence[Tag] | None = None) -> Rule:
    """Save ``rule`` (and its tags, when given) and keep its periodic task in step."""
    with transaction.atomic():
        rule.save()
        if add_tags is not None:
            rule.add_tags.set(add_tags)
        if remove_tags is not None:
            rule.remove_tags.set(remove_tags)
        rule_schedule_sync(rule=rule)
    return rule


def rule_schedule_sync(*, rule: Rule) -> PeriodicTask | None:
    """Create, update or remove the django-celery-beat task that runs ``rule``.

    A scheduled rule with "every" or a crontab has one PeriodicTask, enabled
    with the rule; any other rule has none. Safe to call again.
    """
    task = rule.periodic_task
    wanted = rule.trigger == RuleTrigger.SCHEDULE and (rule.schedule_every
                                                       or rule.schedule_crontab.strip())
    if not wanted:
        if task is not None:
            Rule.objects.filter(pk=rule.pk).update(periodic_task=None)
            rule.periodic_task = None
            task.delete()
        return None
    interval = crontab = None
    if rule.schedule_crontab.strip():
        minute, hour, day_of_month, month_of_year, day_of_week = rule.schedule_crontab.split()
        crontab, _created = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=settings.TIME_ZONE)
    else:
        interval, _created = IntervalSchedule.objects.get_or_create(
            every=rule.schedule_every, period=rule.schedule_unit)
    task = task or PeriodicTask()
    task.name = f"Tagwerk rule #{rule.pk}: {rule.name}"[:200]
    task.task = TASK_NAME
    task.args = json.dumps([rule.pk])
    task.kwargs = "{}"
    task.interval, task.crontab = interval, crontab
    task.enabled = rule.enabled
    task.description = _("Runs the Tagwerk rule “%(name)s”; edit the rule, not this task.") % {
        "name": rule.name}
    task.save()
    if rule.periodic_task_id != task.pk:
        Rule.objects.filter(pk=rule.pk).update(periodic_task=task)
        rule.periodic_task = task
    return task


def rules_delete(*, rules: QuerySet[Rule]) -> int:
    """Delete ``rules`` and their periodic tasks; return how many rules."""
    with transaction.atomic():
        task_ids = list(rules.exclude(periodic_task=None).values_list("periodic_task", flat=True))
        count = rules.count()
        rules.delete()
        PeriodicTask.objects.filter(pk__in=task_ids).delete()
    return count


def rules_set_enabled(*, rules: QuerySet[Rule], enabled: bool) -> int:
    changed = 0
    for rule in rules.exclude(enabled=enabled):
        rule.enabled = enabled
        rule.save(update_fields=["enabled", "updated_at"])
        rule_schedule_sync(rule=rule)
        changed += 1
    return changed


@dataclass(frozen=True)
class Conflict:
    other: Rule
    tags: tuple[str, ...]
    overlap: int
    this_wins: bool

    @property
    def message(self) -> str:
        winner = _("this rule") if self.this_wins else f"“{self.other.name}”"
        return _(
            "“%(other)s” (priority %(priority)d) can undo this rule on %(tags)s: %(n)d "
            "contacts are in both audiences now. In one run %(winner)s wins (higher priority "
            "first, and a rule never reverses an earlier rule's change in the same run); "
            "between runs they would take turns, so narrow one of the audiences."
        ) % {"other": self.other.name, "priority": self.other.priority,
             "tags": ", ".join(f"“{t}”" for t in self.tags), "n": self.overlap,
             "winner": winner}


def _audience(rule: Rule, now: datetime) -> Q:
    return to_q(parse(rule.segment), now) if rule.segment.strip() else Q()


def rule_conflicts(*, rule: Rule, now: datetime | None = None) -> list[Conflict]:
    """Enabled rules that reverse a tag change of ``rule`` for contacts in both audiences."""
    now = now or timezone.now()
    mine = _directions(rule)
    names = dict(Tag.objects.values_list("pk", "name"))
    try:
        my_q = _audience(rule, now)
    except SegmentError:
        return []
    conflicts = []
    for other in Rule.objects.filter(enabled=True).exclude(pk=rule.pk):
        theirs = _directions(other)
        opposed = sorted({names.get(tag, "?") for tag, d in mine
                          if (tag, _opposite(d)) in theirs})
        if not opposed:
            continue
        try:
            overlap = Contact.objects.filter(my_q).filter(_audience(other, now)).count()
        except SegmentError:
            continue
        if overlap:
            # The order of rules_ordered(): higher priority first, then by name.
            this_wins = (-rule.priority, rule.name) < (-other.priority, other.name)
            conflicts.append(Conflict(other, tuple(opposed), overlap, this_wins))
    return conflicts
