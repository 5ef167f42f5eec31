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
