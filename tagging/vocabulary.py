"""Writes on the vocabulary: tags and dimensions, with the tag version log.

The admin calls these services (never signals), and so can any app or
script: each checks the actor's rights, enforces the vocabulary rules and
records a ``TagVersion`` row for every create, rename, recolour, move,
archive, restore, merge and delete, in the same transaction as the change.
``actor=None`` is the system itself and may do anything. What a merge or a
deletion does to the tag's holders goes through ``tagging.services``, the one
writer of assignments and their history.

Vocabulary rules:

* a name is unique after folding case, accents, whitespace and dashes
  (``tagging.names.name_key``);
* a *near-twin* — a name within ``TAGWERK_TAG_NEAR_TWIN_DISTANCE`` edits (default 2)
  of an existing one, or in the same ``TAGWERK_TAG_SYNONYMS`` group — is refused
  with ``NearTwinWarning`` unless the caller confirms it with a reason;
* renames, merges, archiving and deleting need a reason;
* no tag is created in, or moved into, an archived dimension.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import (
    DO_NOTHING,
    SET_DEFAULT,
    SET_NULL,
    Count,
    ProtectedError,
    Q,
    RestrictedError,
)
from django.utils.translation import gettext as _

from tagging.models import (
    Dimension,
    Tag,
    TagAssignment,
    TagKind,
    TagVersion,
    VersionAction,
)
from tagging.names import INVISIBLE, name_key
from tagging.permissions import (
    TagPermissionDenied,
    ensure_can_archive_dimensions,
    ensure_can_define,
)
from tagging.services import assignments_move, assignments_remove_all

TAG_FIELDS = ["name", "dimension", "colour", "symbol", "description", "kind", "lifetime_days"]
DIMENSION_FIELDS = ["name", "colour", "description", "order", "single_choice"]


class VocabularyError(ValueError):
    """The change breaks a vocabulary rule; nothing was changed. The message says what to do.

    ``field`` names the form field the message belongs to, when there is one.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NearTwinWarning(VocabularyError):
    """The name is close to existing ones; confirm with a reason to keep it."""

    def __init__(self, message: str, twins: list[Tag | Dimension]):
        super().__init__(message, field="name")
        self.twins = twins


# --- values that reach HTML and CSS ---------------------------------------------

# Colours go into inline styles (``style="--tw-colour:…"``) and SVG ``fill``: HTML escaping
# does not stop ``red;background:url(…)`` there, so only hex colours are stored.
COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def _check_display(obj: Tag | Dimension, *, blank_colour: bool) -> None:
    """Refuse a colour that is not ``#rgb``/``#rrggbb`` and control characters in the
    texts shown on every page (name, symbol, description), whoever calls the service."""
    colour = obj.colour or ""
    if not (blank_colour and colour == "") and not COLOUR.fullmatch(colour):
        raise VocabularyError(
            _("“%(c)s” is not a colour; write it as #rgb or #rrggbb, for example #4c6ef5.")
            % {"c": colour[:20]}, field="colour")
    for field in ("name", "symbol", "description"):
        if INVISIBLE.search(getattr(obj, field, "") or ""):
            raise VocabularyError(
                _("The %(field)s contains an invisible control character; remove it.")
                % {"field": obj._meta.get_field(field).verbose_name}, field=field)
    symbol_length = Tag._meta.get_field("symbol").max_length
    if isinstance(obj, Tag) and len(obj.symbol or "") > symbol_length:
        raise VocabularyError(
            _("A symbol is at most %(n)d characters, such as ★ or 0 to 3.")
            % {"n": symbol_length}, field="symbol")


# --- names ---------------------------------------------------------------------


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` as soon as it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _synonym_keys(key: str) -> set[str]:
    """Name keys listed with ``key`` in one group of ``TAGWERK_TAG_SYNONYMS``."""
    related: set[str] = set()
    for group in getattr(settings, "TAGWERK_TAG_SYNONYMS", []):
        keys = {name_key(n) for n in group}
        if key in keys:
            related |= keys
    return related - {key}


def name_owner(model: type[Tag] | type[Dimension], name: str, *, exclude_pk=None):
    """The tag (or dimension) already called ``name`` as the vocabulary compares names."""
    return model.objects.filter(name_key=name_key(name)).exclude(pk=exclude_pk).first()


def near_twins(model: type[Tag] | type[Dimension], name: str, *, exclude_pk=None) -> list:
    """Existing names that are easy to confuse with ``name`` (edit distance or synonyms)."""
    key = name_key(name)
    limit = getattr(settings, "TAGWERK_TAG_NEAR_TWIN_DISTANCE", 2)
    synonyms = _synonym_keys(key)
    twins = []
    # A vocabulary holds hundreds of names, so comparing in Python is cheap.
    for obj in model.objects.exclude(pk=exclude_pk).only("pk", "name", "name_key"):
        if obj.name_key == key:
            continue  # an exact clash, reported by name_owner
        if obj.name_key in synonyms or edit_distance(obj.name_key, key, limit) <= limit:
            twins.append(obj)
    return twins


def _check_name(model, obj, *, near_twins_confirmed: bool, reason: str) -> None:
    label = _("tag") if model is Tag else _("dimension")
    owner = name_owner(model, obj.name, exclude_pk=obj.pk)
    if owner:
        raise VocabularyError(
            _("The %(label)s “%(existing)s” already exists; “%(name)s” is the same name once "
              "case, accents, spaces and dashes are ignored. Use the existing one or pick "
              "another name.") % {"label": label, "existing": owner.name, "name": obj.name},
            field="name",
        )
    twins = near_twins(model, obj.name, exclude_pk=obj.pk)
    if twins and not (near_twins_confirmed and reason.strip()):
        names = ", ".join(f"“{t.name}”" for t in twins)
        raise NearTwinWarning(
            _("“%(name)s” looks like %(twins)s. If it really means something else, confirm "
              "the near-twin and give a reason.") % {"name": obj.name, "twins": names},
            twins,
        )


# --- the tag version log ------------------------------------------------------


def version_record(*, obj: Tag | Dimension, action: str, actor=None, changes: dict | None = None,
                   reason: str = "") -> TagVersion:
    """Append one entry to the tag version log."""
    return TagVersion.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type="tag" if isinstance(obj, Tag) else "dimension",
        object_id=obj.pk,
        object_name=obj.name[:120],
        changes=changes or {},
        reason=reason.strip(),
    )


def _value(obj, field: str):
    value = getattr(obj, field)
    if isinstance(value, Dimension):
        return value.name
    return value


def _snapshot(obj, fields: list[str]) -> dict:
    return {f: _value(obj, f) for f in fields}


def _diff(old, new, fields: list[str]) -> dict[str, list]:
    """``{field: [before, after]}`` for the fields that changed."""
    changed = {}
    for field in fields:
        attr = "dimension_id" if field == "dimension" else field
        if getattr(old, attr) != getattr(new, attr):
            changed[field] = [_value(old, field), _value(new, field)]
    return changed


def _record_changes(obj, changes: dict, *, actor, reason: str, extra: dict) -> None:
    """One log entry per kind of change, so that filtering by “renamed” finds every rename."""
    kinds = [("name", VersionAction.RENAMED), ("dimension", VersionAction.MOVED),
             ("colour", VersionAction.RECOLOURED)]
    rest = dict(changes)
    for field, action in kinds:
        if field in rest:
            version_record(obj=obj, action=action, actor=actor,
                           changes={field: rest.pop(field), **extra}, reason=reason)
    if rest:
        version_record(obj=obj, action=VersionAction.CHANGED, actor=actor,
                       changes={**rest, **extra}, reason=reason)


def _require_reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise VocabularyError(
            _("Give a reason for the %(what)s; the tag version log keeps it.") % {"what": what},
            field="reason",
        )


# --- tags -------------------------------------------------------------------------


def tag_save(*, tag: Tag, actor=None, reason: str = "", near_twins_confirmed: bool = False) -> Tag:
    """Create ``tag`` (unsaved) or store the edits made to it, and log them.

    Refuses (``TagPermissionDenied``, ``VocabularyError``) before writing anything.
    Saving an unchanged tag writes no log entry.
    """
    old = Tag.objects.select_related("dimension").get(pk=tag.pk) if tag.pk else None
    ensure_can_define(actor, [tag.dimension] + ([old.dimension] if old else []))
    if old and old.is_archived != tag.is_archived:
        raise VocabularyError(_("Archive or restore a tag with its own action, with a reason."))
    changes = _diff(old, tag, TAG_FIELDS) if old else {}
    _check_display(tag, blank_colour=True)
    if old is None or "name" in changes:
        _check_name(Tag, tag, near_twins_confirmed=near_twins_confirmed, reason=reason)
    if "name" in changes:
        _require_reason(reason, _("rename"))
    if (old is None or "dimension" in changes) and tag.dimension.is_archived:
        raise VocabularyError(
            _("The dimension “%(dimension)s” is archived; restore it first or choose another "
              "dimension.") % {"dimension": tag.dimension.name},
            field="dimension",
        )
    if "dimension" in changes:
        _check_move(tag)
    extra = {"near_twins_confirmed": True} if near_twins_confirmed else {}
    try:
        with transaction.atomic():
            tag.save()
            if old is None:
                version_record(obj=tag, action=VersionAction.CREATED, actor=actor,
                               changes={**_snapshot(tag, TAG_FIELDS), **extra}, reason=reason)
            elif changes:
                _record_changes(tag, changes, actor=actor, reason=reason, extra=extra)
    except IntegrityError:
        # Another administrator saved the same name a moment ago.
        _check_name(Tag, tag, near_twins_confirmed=True, reason="-")
        raise
    return tag


def tag_create(*, dimension: Dimension, name: str, actor=None, reason: str = "",
               near_twins_confirmed: bool = False, **attributes) -> Tag:
    """Define a new tag in ``dimension`` (see ``tag_save`` for the checks)."""
    tag = Tag(dimension=dimension, name=name, **attributes)
    return tag_save(tag=tag, actor=actor, reason=reason, near_twins_confirmed=near_twins_confirmed)


def _check_move(tag: Tag) -> None:
    """Moving into a single-choice dimension must not leave a contact with two of its tags."""
    if not tag.dimension.single_choice:
        return
    clashes = (
        TagAssignment.objects.filter(tag__dimension=tag.dimension_id)
        .exclude(tag=tag.pk)
        .filter(contact__in=TagAssignment.objects.filter(tag=tag.pk).values("contact_id"))
        .values("contact_id").distinct().count()
    )
    if clashes:
        raise VocabularyError(
            _("%(n)d contacts hold “%(tag)s” and another tag of the single-choice dimension "
              "“%(dimension)s”. Merge or remove those tags first.")
            % {"n": clashes, "tag": tag.name, "dimension": tag.dimension.name},
            field="dimension",
        )


def tag_archive(*, tag: Tag, actor=None, reason: str) -> bool:
    """Archive ``tag``: it keeps its assignments and history but can no longer be applied.

    Returns False (and logs nothing) when it was archived already.
    """
    ensure_can_define(actor, [tag.dimension])
    _require_reason(reason, _("archiving"))
    with transaction.atomic():
        if not Tag.objects.filter(pk=tag.pk, is_archived=False).update(is_archived=True):
            return False
        tag.is_archived = True
        version_record(obj=tag, action=VersionAction.ARCHIVED, actor=actor, reason=reason,
                       changes={"is_archived": [False, True]})
    return True


def tag_restore(*, tag: Tag, actor=None, reason: str = "") -> bool:
    """Make an archived tag applicable again; False when it was not archived.

    A tag of an archived dimension comes back with its dimension (``dimension_restore``).
    """
    ensure_can_define(actor, [tag.dimension])
    if tag.is_archived and Dimension.objects.filter(pk=tag.dimension_id,
                                                    is_archived=True).exists():
        raise VocabularyError(
            _("“%(tag)s” belongs to the archived dimension “%(dimension)s”; restore the "
              "dimension first (or move the tag to another dimension).")
            % {"tag": tag.name, "dimension": tag.dimension.name})
    with transaction.atomic():
        if not Tag.objects.filter(pk=tag.pk, is_archived=True).update(
                is_archived=False, archived_with_dimension=False):
            return False
        tag.is_archived = tag.archived_with_dimension = False
        version_record(obj=tag, action=VersionAction.RESTORED, actor=actor, reason=reason,
                       changes={"is_archived": [True, False]})
    return True


@dataclass(frozen=True)
class Reference:
    label: str
    count: int


# Other apps register what refers to a tag without a foreign key (e.g. segment
# expressions that name it): ``register_tag_reference(_("segments"), fn)``.
_REFERENCE_COUNTERS: list[tuple[str, Callable[[Tag], int]]] = []


def register_tag_reference(label: str, counter: Callable[[Tag], int]) -> None:
    """Make ``counter(tag) -> int`` part of what a tag's delete confirmation lists."""
    if (label, counter) not in _REFERENCE_COUNTERS:
        _REFERENCE_COUNTERS.append((label, counter))


def _uses(targets: list[tuple[type, str]], value, skip: tuple = ()) -> list[Reference]:
    """Rows of other models that point at ``value``, one COUNT query per model.

    ``targets`` are ``(model, lookup suffix)`` pairs: ``(Tag, "")`` counts what points
    at a tag, ``(Tag, "__dimension")`` what points at any tag of a dimension. Hidden
    relations (``related_name="+"``) count too; ``SET_NULL``/``DO_NOTHING`` ones do
    not, since deleting does not touch them.
    """
    queries: dict[type, Q] = {}
    for model, suffix in targets:
        for rel in model._meta.get_fields(include_hidden=True):
            if not (rel.is_relation and rel.auto_created and not rel.concrete):
                continue
            related = rel.related_model
            if (related._meta.auto_created  # a many-to-many table, counted through its field
                    or related in skip
                    or getattr(rel, "on_delete", None) in (SET_NULL, SET_DEFAULT, DO_NOTHING)):
                continue
            lookup = Q(**{f"{rel.field.name}{suffix}": value})
            queries[related] = queries[related] | lookup if related in queries else lookup
    refs = []
    for related, query in queries.items():
        count = related._default_manager.filter(query).values("pk").distinct().count()
        refs.append(Reference(str(related._meta.verbose_name_plural), count))
    return refs


def tag_references(tag: Tag) -> list[Reference]:
    """What still refers to ``tag``, as counts (one COUNT query each, never the rows)."""
    refs = [Reference(_("contacts holding it"), TagAssignment.objects.filter(tag=tag).count())]
    refs += _uses([(Tag, "")], tag, skip=(TagAssignment,))
    refs += [Reference(str(label), counter(tag)) for label, counter in _REFERENCE_COUNTERS]
    return [r for r in refs if r.count]


def dimension_references(dimension: Dimension) -> list[Reference]:
    """What still refers to ``dimension`` or its tags, as counts (never the rows).

    Registered tag counters are asked once per tag of the dimension (a few dozen)
    and summed.
    """
    tags = list(Tag.objects.filter(dimension=dimension))
    refs = [
        Reference(_("tags"), len(tags)),
        Reference(_("tag holdings"),
                  TagAssignment.objects.filter(tag__dimension=dimension).count()),
    ]
    refs += _uses([(Tag, "__dimension"), (Dimension, "")], dimension,
                  skip=(Tag, TagAssignment))
    refs += [Reference(str(label), sum(counter(t) for t in tags))
             for label, counter in _REFERENCE_COUNTERS]
    return [r for r in refs if r.count]


def tag_delete(*, tag: Tag, actor=None, reason: str) -> int:
    """Delete ``tag`` for good; its assignments are removed set-based with history.

    Returns the number of contacts that lost the tag. Prefer ``tag_archive``
    for a tag that is still referenced.
    """
    ensure_can_define(actor, [tag.dimension])
    _require_reason(reason, _("deletion"))
    pk, snapshot = tag.pk, _snapshot(tag, TAG_FIELDS)
    with transaction.atomic():
        removed = assignments_remove_all(tag=tag, actor=actor, source_ref=f"delete:tag:{pk}")
        version_record(obj=tag, action=VersionAction.DELETED, actor=actor, reason=reason,
                       changes={**snapshot, "contacts_untagged": removed})
        try:
            tag.delete()
        except (ProtectedError, RestrictedError) as exc:
            names = sorted({str(o._meta.verbose_name_plural) for o in exc.protected_objects}
                           if isinstance(exc, ProtectedError) else
                           {str(o._meta.verbose_name_plural) for o in exc.restricted_objects})
            raise VocabularyError(
                _("“%(tag)s” is still used by %(what)s and cannot be deleted; archive it "
                  "instead.") % {"tag": snapshot["name"], "what": ", ".join(names)}
            ) from None
    tag.pk = pk  # keep the id readable for the caller's message
    return removed


@dataclass(frozen=True)
class MergeResult:
    moved: int  # contacts that received the target tag
    contacts: int  # contacts that held the source tag
    replaced: int  # single-choice replacements made on the way


def tag_merge(*, source: Tag, target: Tag, actor=None, reason: str) -> MergeResult:
    """Merge ``source`` into ``target``: its holders get ``target`` (no duplicates), it is archived.

    History is written (reason “merge”), the version log gets a “merged” and an
    “archived” entry. Merging an already merged (archived, empty) tag moves nothing.
    """
    if source.pk == target.pk:
        raise VocabularyError(_("A tag cannot be merged into itself."))
    if target.is_archived:
        raise VocabularyError(
            _("“%(tag)s” is archived; restore it before merging into it.") % {"tag": target.name})
    ensure_can_define(actor, [source.dimension, target.dimension])
    _require_reason(reason, _("merge"))
    ref = f"merge:{source.pk}:{target.pk}"
    with transaction.atomic():
        # The define right on both tags authorises the merge; the apply right is not asked.
        result = assignments_move(from_tag=source, to_tag=target, actor=actor, source_ref=ref)
        version_record(obj=source, action=VersionAction.MERGED, actor=actor, reason=reason,
                       changes={"into": target.name, "into_id": target.pk,
                                "contacts": result.contacts, "moved": result.added})
        if not source.is_archived:
            tag_archive(tag=source, actor=actor,
                        reason=_("Merged into “%(tag)s”: %(reason)s")
                        % {"tag": target.name, "reason": reason})
    return MergeResult(moved=result.added, contacts=result.contacts, replaced=result.replaced)


# --- dimensions ------------------------------------------------------------------


def _ensure_model_perm(actor, codename: str) -> None:
    if actor is None or actor.is_superuser:
        return
    if not (actor.is_active and actor.has_perm(f"tagging.{codename}")):
        raise TagPermissionDenied(
            _("You may not change dimensions. Ask a tag administrator."))


def dimension_save(*, dimension: Dimension, actor=None, reason: str = "",
                   near_twins_confirmed: bool = False) -> Dimension:
    """Create ``dimension`` (unsaved) or store the edits made to it, and log them."""
    old = Dimension.objects.get(pk=dimension.pk) if dimension.pk else None
    _ensure_model_perm(actor, "change_dimension" if old else "add_dimension")
    if (old.is_archived if old else False) != dimension.is_archived:
        raise VocabularyError(
            _("Archive or restore a dimension with its own action, with a reason."))
    changes = _diff(old, dimension, DIMENSION_FIELDS) if old else {}
    _check_display(dimension, blank_colour=False)
    if old is None or "name" in changes:
        _check_name(Dimension, dimension, near_twins_confirmed=near_twins_confirmed,
                    reason=reason)
    if "name" in changes:
        _require_reason(reason, _("rename"))
    if changes.get("single_choice") == [False, True]:
        _check_single_choice(dimension)
    extra = {"near_twins_confirmed": True} if near_twins_confirmed else {}
    with transaction.atomic():
        dimension.save()
        if old is None:
            version_record(obj=dimension, action=VersionAction.CREATED, actor=actor,
                           changes={**_snapshot(dimension, DIMENSION_FIELDS), **extra},
                           reason=reason)
        elif changes:
            _record_changes(dimension, changes, actor=actor, reason=reason, extra=extra)
    return dimension


def _check_single_choice(dimension: Dimension) -> None:
    crowded = (TagAssignment.objects.filter(tag__dimension=dimension.pk).values("contact_id")
               .annotate(n=Count("*")).filter(n__gt=1).count())
    if crowded:
        raise VocabularyError(
            _("%(n)d contacts hold more than one tag of “%(dimension)s”; it cannot become "
              "single-choice until each holds at most one.")
            % {"n": crowded, "dimension": dimension.name},
            field="single_choice",
        )


def dimension_delete(*, dimension: Dimension, actor=None, reason: str) -> int:
    """Delete ``dimension`` with its tags; returns the number of tag holdings removed.

    Each tag goes as with ``tag_delete`` (assignments removed set-based with history,
    one “deleted” entry per tag), then the dimension; all or nothing. Something that
    cannot lose the dimension (a rule creating its tags there) refuses the whole
    deletion. Prefer ``dimension_archive`` for a dimension that is still referenced.
    """
    _ensure_model_perm(actor, "delete_dimension")
    tags = list(Tag.objects.filter(dimension=dimension).select_related("dimension")
                .order_by("name"))
    if tags:
        ensure_can_define(actor, [dimension])
    _require_reason(reason, _("deletion"))
    snapshot = _snapshot(dimension, DIMENSION_FIELDS)
    tag_reason = _("Dimension “%(dimension)s” deleted: %(reason)s") % {
        "dimension": dimension.name, "reason": reason.strip()}
    with transaction.atomic():
        removed = sum(tag_delete(tag=t, actor=actor, reason=tag_reason) for t in tags)
        version_record(obj=dimension, action=VersionAction.DELETED, actor=actor, reason=reason,
                       changes={**snapshot, "tags_deleted": [t.name for t in tags],
                                "holdings_removed": removed})
        try:
            dimension.delete()
        except (ProtectedError, RestrictedError) as exc:
            blocking = exc.protected_objects if isinstance(exc, ProtectedError) \
                else exc.restricted_objects
            names = sorted({str(o._meta.verbose_name_plural) for o in blocking})
            raise VocabularyError(
                _("“%(dimension)s” is still used by %(what)s and cannot be deleted; archive it "
                  "instead.") % {"dimension": snapshot["name"], "what": ", ".join(names)}
            ) from None
    return removed


@dataclass(frozen=True)
class DimensionArchiveResult:
    changed: bool  # False: it was in that state already and nothing was logged
    tags: list[str]  # the tags archived (or restored) with it


def dimension_archive(*, dimension: Dimension, actor=None, reason: str) -> DimensionArchiveResult:
    """Archive ``dimension`` and every tag of it that is not archived yet.

    Its tags can no longer be applied; assignments and history stay, and segment
    expressions naming them still work. The tags archived here are marked
    (``archived_with_dimension``) so that ``dimension_restore`` brings back exactly
    these, not tags archived on their own before. Logged for the dimension and for
    each tag, with the reason. Archiving an archived dimension changes nothing.
    """
    ensure_can_archive_dimensions(actor, [dimension])
    _require_reason(reason, _("archiving"))
    with transaction.atomic():
        if not Dimension.objects.filter(pk=dimension.pk, is_archived=False).update(
                is_archived=True):
            return DimensionArchiveResult(changed=False, tags=[])
        dimension.is_archived = True
        tags = list(Tag.objects.select_for_update().filter(dimension=dimension, is_archived=False)
                    .order_by("name"))
        Tag.objects.filter(pk__in=[t.pk for t in tags]).update(
            is_archived=True, archived_with_dimension=True)
        version_record(obj=dimension, action=VersionAction.ARCHIVED, actor=actor, reason=reason,
                       changes={"is_archived": [False, True],
                                "tags_archived": [t.name for t in tags]})
        _record_tags(tags, VersionAction.ARCHIVED, actor=actor,
                     reason=_("Dimension “%(dimension)s” archived: %(reason)s")
                     % {"dimension": dimension.name, "reason": reason.strip()},
                     changes={"is_archived": [False, True], "with_dimension": dimension.name})
    return DimensionArchiveResult(changed=True, tags=[t.name for t in tags])


def dimension_restore(*, dimension: Dimension, actor=None, reason: str = ""
                      ) -> DimensionArchiveResult:
    """Restore an archived ``dimension`` and the tags archived with it.

    Tags that were archived on their own before the dimension stay archived.
    Restoring a dimension that is not archived changes nothing.
    """
    ensure_can_archive_dimensions(actor, [dimension])
    with transaction.atomic():
        if not Dimension.objects.filter(pk=dimension.pk, is_archived=True).update(
                is_archived=False):
            return DimensionArchiveResult(changed=False, tags=[])
        dimension.is_archived = False
        tags = list(Tag.objects.select_for_update()
                    .filter(dimension=dimension, archived_with_dimension=True).order_by("name"))
        Tag.objects.filter(pk__in=[t.pk for t in tags]).update(
            is_archived=False, archived_with_dimension=False)
        kept = list(Tag.objects.filter(dimension=dimension, is_archived=True)
                    .exclude(pk__in=[t.pk for t in tags]).values_list("name", flat=True))
        version_record(obj=dimension, action=VersionAction.RESTORED, actor=actor, reason=reason,
                       changes={"is_archived": [True, False],
                                "tags_restored": [t.name for t in tags],
                                "tags_still_archived": kept})
        message = _("Dimension “%(dimension)s” restored") % {"dimension": dimension.name}
        _record_tags(tags, VersionAction.RESTORED, actor=actor,
                     reason=f"{message}: {reason.strip()}" if reason.strip() else message,
                     changes={"is_archived": [True, False], "with_dimension": dimension.name})
    return DimensionArchiveResult(changed=True, tags=[t.name for t in tags])


def _record_tags(tags: list[Tag], action: str, *, actor, reason: str, changes: dict) -> None:
    """One version log entry per tag, in one statement (a dimension holds a few dozen)."""
    TagVersion.objects.bulk_create([
        TagVersion(actor=actor if getattr(actor, "pk", None) else None, action=action,
                   object_type="tag", object_id=t.pk, object_name=t.name[:120],
                   changes=changes, reason=reason)
        for t in tags
    ])


# The source documents' vocabulary in German, for the demo and the starter rules:
# (dimension, colour, single choice, description, [(tag, symbol, kind, lifetime days)]).
STARTER_VOCABULARY = [
    ("Kaufkraft", "#B8860B", False, "Purchasing power: the top 20% bring 60% of revenue.", [
        ("VIP", "★", TagKind.STATIC, None),
        ("SVIP", "☀", TagKind.STATIC, None),
        ("Hochwertiger Kunde", "◆", TagKind.DYNAMIC, None),
        ("Historischer Bestand", "☾", TagKind.DYNAMIC, None),
        ("Historischer Bestand - Reaktivierung erforderlich", "☾!", TagKind.DYNAMIC, None),
    ]),
    ("Interesse", "#D6336C", False, "Interests and product preferences.", [
        ("Interesse-Make-up", "", TagKind.STATIC, None),
        ("Interesse-Sport", "", TagKind.STATIC, None),
        ("Interesse-Essen", "", TagKind.STATIC, None),
        ("Interesse-Reisen", "", TagKind.STATIC, None),
        ("Produktkategorie-Lippenstift", "", TagKind.STATIC, None),
        ("Interesse Produkt A", "", TagKind.DYNAMIC, 90),
    ]),
    ("Kaufphase", "#2F9E44", True, "Purchase stage: a contact is in exactly one stage.", [
        ("Kaufphase-Stöbern", "1", TagKind.DYNAMIC, None),
        ("Warenkorbabbruch", "2", TagKind.DYNAMIC, None),
        ("Bestellt", "3", TagKind.DYNAMIC, None),
        ("Kaufphase-Abgeschlossen", "4", TagKind.DYNAMIC, None),
        ("Wiederkäufer", "5", TagKind.DYNAMIC, None),
    ]),
    ("Quelle", "#1C7ED6", True, "Source channel: where the contact came from.", [
        ("Quelle-Offline-Event", "", TagKind.STATIC, None),
        ("Quelle-Gruppe", "", TagKind.STATIC, None),
        ("Quelle-Offizieller Account", "", TagKind.STATIC, None),
        ("Quelle-TikTok", "", TagKind.STATIC, None),
        ("Quelle-Paketkarte", "", TagKind.STATIC, None),
        ("Quelle-QR-Code", "", TagKind.STATIC, None),
    ]),
    ("Aktivität", "#F08C00", False, "Interaction activity, kept by rules.", [
        ("Hohe Aktivität", "3", TagKind.DYNAMIC, None),
        ("Beobachtung notwendig", "1", TagKind.DYNAMIC, None),
        ("Inaktiver Kunde", "0", TagKind.DYNAMIC, None),
        ("Drohender Abwanderer", "!", TagKind.DYNAMIC, None),
        ("Hohes Potenzial - Nachverfolgung erforderlich", "↑", TagKind.DYNAMIC, 30),
    ]),
    ("Lebenszyklus", "#7048E8", True, "Lifecycle since joining (AIPL).", [
        ("Neukunde", "N", TagKind.DYNAMIC, None),
        ("Wachstum-Hohe Frequenz", "G+", TagKind.DYNAMIC, None),
        ("Wachstum-Niedrige Frequenz", "G", TagKind.DYNAMIC, None),
    ]),
    ("Anlässe", "#0CA678", False, "Occasions that call for a message.", [
        ("Geburtstag bald", "🎂", TagKind.DYNAMIC, None),
    ]),
]


def vocabulary_ensure(spec: list) -> dict[str, Tag]:
    """Create the dimensions and tags of ``spec`` (as ``STARTER_VOCABULARY``) where missing;
    return its tags by name. Existing ones are left as they are."""
    tags: dict[str, Tag] = {}
    for order, (dim_name, colour, single, description, entries) in enumerate(spec):
        dimension, _ = Dimension.objects.get_or_create(
            name=dim_name,
            defaults={"colour": colour, "single_choice": single, "description": description,
                      "order": order},
        )
        for name, symbol, kind, lifetime in entries:
            tag = Tag.objects.filter(name=name).select_related("dimension").first()
            if tag is None:
                tag = Tag(dimension=dimension, name=name, symbol=symbol, kind=kind,
                          lifetime_days=lifetime)
                tag.save()
            tags[name] = tag
    return tags
