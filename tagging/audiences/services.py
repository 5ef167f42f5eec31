"""Writes for audiences: bulk “Manage tags” operations and saved-segment counts.

The tag changes themselves go through ``tagging.services.tags_change`` (rights,
single-choice replacement, history); this module decides what to change,
records it as a ``BulkOperation``, runs it now or on a worker, and undoes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from pyroaring import BitMap

from crm.jobs import Claim, JobLost, job_queue
from crm.metrics import job_timed
from crm.models import Contact
from tagging.audiences import index
from tagging.audiences.language import SegmentError, TagRef
from tagging.audiences.models import BulkOperation, BulkStatus, Segment
from tagging.audiences.selectors import bulk_operation_tags, count_matching
from tagging.audiences.sql import to_q
from tagging.models import Tag
from tagging.permissions import ensure_can_apply, ensure_can_undo, undo_refusal
from tagging.services import (
    TagChangeResult,
    contact_ids,
    operation_counts,
    operation_undo,
    tags_change,
    tags_change_validate,
)

BULK_JOB = "bulk"  # its kind of long job (crm.jobs), registered in AudiencesConfig.ready()
SLICE_SIZE = 5_000  # contacts per committed slice: the resume cursor moves by this much


@dataclass
class TagEffect:
    tag: Tag
    gain: int = 0
    lose: int = 0
    replaced: bool = False


@dataclass
class BulkPreview:
    """What a bulk change would do, counted before anything changes."""

    total: int
    effects: list[TagEffect] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"total": self.total, "tags": [
            {"tag": e.tag.name, "tag_id": e.tag.pk, "gain": e.gain, "lose": e.lose,
             "replaced": e.replaced} for e in self.effects]}


def bulk_preview(*, contacts: QuerySet[Contact] | list[int], add: list[Tag], remove: list[Tag],
                 actor=None) -> BulkPreview:
    """Count, per tag, how many of ``contacts`` would gain or lose it. Changes nothing.

    Raises ``TagPermissionDenied`` or ``TagChangeError`` as ``tags_change`` would.
    Counted on the tag bitmaps where they can answer, else one SQL count per tag.
    """
    tags_change_validate(add, remove)
    ensure_can_apply(actor, [*add, *remove])
    rivals = {tag.pk: list(Tag.objects.filter(dimension_id=tag.dimension_id).exclude(pk=tag.pk))
              for tag in add if tag.dimension.single_choice}
    involved = [*add, *remove, *(r for group in rivals.values() for r in group)]
    if index.usable():
        selected = BitMap(contact_ids(contacts))
        total = len(selected)
        with index.reading() as loaded:  # held still while counting
            holders = {t.pk: selected.intersection_cardinality(loaded.tag(t.pk))
                       for t in involved}
    else:
        if not isinstance(contacts, QuerySet):
            contacts = Contact.objects.filter(pk__in=contacts)
        contacts = contacts.order_by()
        total = contacts.count()
        holders = {t.pk: contacts.filter(to_q(TagRef("", 0, (t.pk,)))).count() for t in involved}
    preview = BulkPreview(total=total)
    for tag in add:
        preview.effects.append(TagEffect(tag, gain=total - holders[tag.pk]))
        preview.effects += [TagEffect(rival, lose=holders[rival.pk], replaced=True)
                            for rival in rivals.get(tag.pk, ()) if holders[rival.pk]]
    for tag in remove:
        preview.effects.append(TagEffect(tag, lose=holders[tag.pk]))
    return preview


def bulk_operation_start(*, contacts: QuerySet[Contact] | list[int], add: list[Tag] = (),
                         remove: list[Tag] = (), actor=None, selection: str = "",
                         preview: BulkPreview | None = None,
                         background: bool | None = None) -> BulkOperation:
    """Record a bulk change and run it: now when small, on a worker above the threshold.

    ``background`` forces the choice (a command waits for its result).

    Rights and the request are checked first; a refusal raises and records
    nothing. The contacts are fixed now, so the worker changes exactly them.
    """
    add, remove = list(add), list(remove)
    tags_change_validate(add, remove)
    ensure_can_apply(actor, [*add, *remove])
    ids = contact_ids(contacts)
    bulk = BulkOperation.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        expression=selection,
        add_tag_ids=[t.pk for t in add],
        remove_tag_ids=[t.pk for t in remove],
        preview=preview.as_json() if preview else {},
        total=len(ids),
        contact_blob=BulkOperation.pack_ids(ids),
    )
    if background is None:
        background = len(ids) > settings.TAGWERK_BULK_ASYNC_THRESHOLD
    if background:
        job_queue(BULK_JOB, bulk.pk)
        return bulk
    return bulk_operation_run(bulk_id=bulk.pk, ids=ids)


def bulk_operation_run(*, bulk_id: int, ids: list[int] | None = None,
                       claim: Claim | None = None) -> BulkOperation:
    """Apply a recorded bulk change slice by slice, reporting progress on the record.

    Each slice of ``SLICE_SIZE`` contacts (in id order) commits with ``processed``, the
    cursor, and renews ``claim`` (``crm.jobs``). Safe to repeat: a finished operation is
    returned as is; a run cut short (worker lost) continues after the last committed
    slice under the same operation id, and the counts are read from the operation's
    history, so the report covers all of it.
    """
    bulk = BulkOperation.objects.select_related("actor").get(pk=bulk_id)
    if bulk.status not in (BulkStatus.PENDING, BulkStatus.RUNNING):
        return bulk
    BulkOperation.objects.filter(pk=bulk.pk).update(
        status=BulkStatus.RUNNING, started_at=Coalesce("started_at", Value(timezone.now())))
    ids = bulk.contact_ids() if ids is None else sorted(ids)  # the cursor needs one order
    add = list(Tag.objects.select_related("dimension").filter(pk__in=bulk.add_tag_ids))
    remove = list(Tag.objects.select_related("dimension").filter(pk__in=bulk.remove_tag_ids))
    try:
        with job_timed("bulk_operation"):
            for start in range(bulk.processed, len(ids), SLICE_SIZE):
                end = min(start + SLICE_SIZE, len(ids))
                with transaction.atomic():
                    tags_change(contacts=ids[start:end], add=add, remove=remove,
                                actor=bulk.actor, source="bulk", source_ref=f"bulk:{bulk.pk}",
                                operation=bulk.operation)
                    BulkOperation.objects.filter(pk=bulk.pk).update(processed=end)
                    if claim:
                        claim.beat()  # a worker that lost the job rolls its slice back
    except JobLost:
        raise  # another worker continues it
    except Exception as error:  # recorded for the progress page, then re-raised
        _finish(bulk, status=BulkStatus.FAILED, error=str(error) or error.__class__.__name__)
        raise
    _finish(bulk, status=BulkStatus.DONE, processed=len(ids), **operation_counts(
        operation=bulk.operation))
    bulk.refresh_from_db()
    return bulk


def bulk_operation_give_up(bulk_id: int, attempts: int) -> None:
    """The operation's worker died ``attempts`` times (``crm.jobs``): fail it, saying what
    is done (the history holds it, and undo takes it back)."""
    bulk = BulkOperation.objects.filter(pk=bulk_id, status__in=[BulkStatus.PENDING,
                                                                BulkStatus.RUNNING]).first()
    if bulk is None:
        return
    _finish(bulk, status=BulkStatus.FAILED, **operation_counts(operation=bulk.operation),
            error=_("The worker running this operation stopped %(attempts)d times, after "
                    "%(done)d of %(total)d contacts; it was not tried again. The changes "
                    "counted here were made: undo them, or select the contacts again.") % {
                        "attempts": attempts, "done": bulk.processed, "total": bulk.total})


def _finish(bulk: BulkOperation, **fields) -> None:
    BulkOperation.objects.filter(pk=bulk.pk).update(finished_at=timezone.now(), **fields)


def bulk_operation_undo(*, bulk: BulkOperation, actor=None) -> TagChangeResult | None:
    """Take back exactly what ``bulk`` changed; ``None`` when it was already undone.

    The actor must be the one who started it or a tag administrator (``can_undo``), and
    needs the right to apply (or to define) every tag involved; refused, nothing changes.
    """
    if bulk.status == BulkStatus.UNDONE:
        return None
    ensure_can_undo(actor, bulk.actor_id, undo_refusal("bulk"), bulk_operation_tags(bulk))
    # Claimed first: a second click finds it undone. Not one transaction with the undo:
    # on SQLite the undo goes in short slices (``operation_undo``); one that fails gives
    # the claim back, and the next click continues it (its slices are idempotent).
    status = bulk.status
    claimed = BulkOperation.objects.filter(pk=bulk.pk).exclude(
        status=BulkStatus.UNDONE).update(
        status=BulkStatus.UNDONE, undone_at=timezone.now(),
        undone_by=actor if getattr(actor, "pk", None) else None)
    if not claimed:
        return None
    try:
        result = operation_undo(operation=bulk.operation, actor=actor,
                                source_ref=f"bulk:{bulk.pk}", resume=True)
    except BaseException:
        BulkOperation.objects.filter(pk=bulk.pk).update(status=status, undone_at=None,
                                                        undone_by=None)
        raise
    bulk.refresh_from_db()
    return result


def segment_counts_refresh(*, segments: QuerySet[Segment] | None = None) -> int:
    """Recount ``segments`` (default: all); return how many were counted.

    A segment whose expression no longer parses (a tag was deleted) keeps no
    count rather than failing the others.
    """
    segments = Segment.objects.all() if segments is None else segments
    counted = 0
    for segment in segments:
        try:
            count = count_matching(segment.expression)
        except SegmentError:
            count = None
        Segment.objects.filter(pk=segment.pk).update(count=count, counted_at=timezone.now())
        counted += count is not None
    return counted
