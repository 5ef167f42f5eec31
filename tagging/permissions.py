"""Who may change which tags.

Rights live on dimensions, never on contacts: a model-wide permission (held
by Marketers) or a django-guardian object permission on one dimension (how
Agents are granted a few dimensions). ``actor=None`` is the system itself
(rules, expiry, webhooks) and may do anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from tagging.models import Dimension, Tag

APPLY = "apply_dimension_tags"
DEFINE = "define_dimension_tags"


class TagPermissionDenied(PermissionDenied):
    """Raised before anything changes; the message names what was refused."""


def _allowed(user, codename: str, dimension: Dimension) -> bool:
    if user is None or user.is_superuser:
        return True
    if not user.is_active:
        return False
    return user.has_perm(f"tagging.{codename}") or user.has_perm(f"tagging.{codename}", dimension)


def can_apply(user, dimension: Dimension) -> bool:
    return _allowed(user, APPLY, dimension)


def can_define(user, dimension: Dimension) -> bool:
    return _allowed(user, DEFINE, dimension)


def ensure_can_apply(user, tags: Iterable[Tag]) -> None:
    """Raise ``TagPermissionDenied`` naming every tag whose dimension ``user`` may not touch."""
    refused = sorted({t.name for t in tags if not can_apply(user, t.dimension)})
    if refused:
        raise TagPermissionDenied(
            _("You may not apply or remove these tags: %(tags)s. Ask a tag administrator to "
              "grant you their dimension.") % {"tags": ", ".join(refused)}
        )


# --- Governance: define rights and permission-filtered dimensions ------------


def ensure_can_define(user, dimensions: Iterable[Dimension]) -> None:
    """Raise ``TagPermissionDenied`` unless ``user`` may define tags in all ``dimensions``."""
    refused = sorted({d.name for d in dimensions if not can_define(user, d)})
    if refused:
        raise TagPermissionDenied(
            _("You may not define, rename, archive, merge or delete tags in these dimensions: "
              "%(dimensions)s. Ask a tag administrator for the right.")
            % {"dimensions": ", ".join(refused)}
        )


def _dimension_ids(user, codename: str) -> set[int] | None:
    """Ids of the dimensions ``user`` holds ``codename`` on; ``None`` means all of them."""
    if user is None or user.is_superuser or (
        user.is_active and user.has_perm(f"tagging.{codename}")
    ):
        return None
    if not user.is_active:
        return set()
    from guardian.shortcuts import get_objects_for_user

    return set(
        get_objects_for_user(user, f"tagging.{codename}", klass=Dimension,
                             accept_global_perms=False).values_list("pk", flat=True)
    )


def applicable_dimension_ids(user) -> set[int] | None:
    """Dimensions whose tags ``user`` may apply and remove (``None``: all of them)."""
    return _dimension_ids(user, APPLY)


def definable_dimension_ids(user) -> set[int] | None:
    """Dimensions in which ``user`` may define tags (``None``: all)."""
    return _dimension_ids(user, DEFINE)


def can_define_any(user) -> bool:
    ids = definable_dimension_ids(user)
    return ids is None or bool(ids)


# --- Governance: archiving whole dimensions ---------------------------------------


def can_archive_dimension(user, dimension: Dimension) -> bool:
    """Archive or restore ``dimension`` (and its tags): a Tag administrator's right.

    Needs the model-wide ``change_dimension`` (a dimension-level change, like a
    rename) and the define right on the dimension (its tags are archived with it).
    A per-dimension define grant alone is not enough: its holder archives tags one by one.
    """
    if user is None or user.is_superuser:
        return True
    return (user.is_active and user.has_perm("tagging.change_dimension")
            and can_define(user, dimension))


def can_archive_dimensions_at_all(user) -> bool:
    """Whether to offer the archive and restore actions on the dimension list."""
    if user is None or user.is_superuser:
        return True
    return user.is_active and user.has_perm("tagging.change_dimension") and can_define_any(user)


def ensure_can_archive_dimensions(user, dimensions: Iterable[Dimension]) -> None:
    """Raise ``TagPermissionDenied`` naming the dimensions ``user`` may not archive or restore."""
    refused = sorted({d.name for d in dimensions if not can_archive_dimension(user, d)})
    if refused:
        raise TagPermissionDenied(
            _("Only a tag administrator may archive or restore these dimensions: "
              "%(dimensions)s.") % {"dimensions": ", ".join(refused)}
        )


# --- Undo: the owner of an operation, or a tag administrator ------------------------------


def can_undo(user, owner_id: int | None) -> bool:
    """Undo an import or bulk operation run by ``owner_id``: its owner, a tag administrator
    (the model-wide define right) or a superuser; the system (``None``) always.

    An undo deletes the contacts an import created and takes back tags on thousands of
    contacts: one marketer must not undo another's work.
    """
    if user is None or user.is_superuser:
        return True
    if not user.is_active:
        return False
    own = owner_id is not None and owner_id == user.pk
    return own or user.has_perm(f"tagging.{DEFINE}")


def undo_refused_dimensions(user, tags: Iterable[Tag]) -> list[str]:
    """Names of the dimensions of ``tags`` whose tags ``user`` may neither apply nor define:
    an undo changes those tags too, so a withdrawn grant withdraws the undo."""
    dimensions = {t.dimension_id: t.dimension for t in tags}  # a right is per dimension
    return sorted(d.name for d in dimensions.values()
                  if not can_apply(user, d) and not can_define(user, d))


def undo_dimensions_refusal(dimensions: list[str]) -> str:
    return _("You may no longer apply tags in these dimensions, which this undo would change: "
             "%(dimensions)s. Nothing was undone; ask a tag administrator to undo it.") % {
        "dimensions": ", ".join(dimensions)}


def undo_refusal_for(user, owner_id: int | None, message: str, tags: Iterable[Tag] = ()) -> str:
    """Why ``user`` may not undo (``message`` when not theirs, or the dimensions they lost);
    empty when they may."""
    if not can_undo(user, owner_id):
        return message
    refused = undo_refused_dimensions(user, tags)
    return undo_dimensions_refusal(refused) if refused else ""


def ensure_can_undo(user, owner_id: int | None, message: str, tags: Iterable[Tag] = ()) -> None:
    """Raise ``TagPermissionDenied`` unless ``user`` may undo (``can_undo``) and may still
    apply (or define) every tag in ``tags``, the tags the undo would change."""
    refusal = undo_refusal_for(user, owner_id, message, tags)
    if refusal:
        raise TagPermissionDenied(refusal)


def undo_refusal(kind: str) -> str:
    """The sentence for someone who may not undo an ``"import"`` or a ``"bulk"`` operation."""
    if kind == "import":
        return _("Only the person who ran this import, or a tag administrator, may undo it.")
    return _("Only the person who started this bulk operation, or a tag administrator, "
             "may undo it.")
