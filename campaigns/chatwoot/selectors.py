"""Reads for the sidebar: a contact's tags grouped by dimension, the tags an agent may add."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

from django.utils import timezone

from crm.models import Contact
from tagging.admin.contacts import assignment_origin
from tagging.models import Dimension, Tag, TagAssignment
from tagging.permissions import applicable_dimension_ids


@dataclass
class HeldTag:
    assignment: TagAssignment
    removable: bool
    origin: str       # “manual: by alice in Chatwoot, 3 days ago”


@dataclass
class DimensionGroup:
    dimension: Dimension
    items: list


def tags_held_grouped(contact: Contact, user) -> list[DimensionGroup]:
    """The contact's tags by dimension (in the dimensions' order), each with where it came
    from and whether ``user`` may remove it; one query."""
    allowed = applicable_dimension_ids(user)
    now = timezone.now()
    held = (TagAssignment.objects.filter(contact=contact)
            .select_related("tag__dimension", "actor")
            .order_by("tag__dimension__order", "tag__dimension__name", "tag__name"))
    return [DimensionGroup(dimension, [
        HeldTag(a, allowed is None or dimension.pk in allowed, assignment_origin(a, now))
        for a in items]) for dimension, items in groupby(held, key=lambda a: a.tag.dimension)]


def tags_addable_grouped(contact: Contact, user) -> list[DimensionGroup]:
    """Tags ``user`` may add to ``contact`` (granted dimensions, not archived, not held)."""
    allowed = applicable_dimension_ids(user)
    tags = (Tag.objects.filter(is_archived=False, dimension__is_archived=False)
            .exclude(assignments__contact=contact).select_related("dimension")
            .order_by("dimension__order", "dimension__name", "name"))
    if allowed is not None:
        tags = tags.filter(dimension_id__in=allowed)
    return [DimensionGroup(dimension, list(items))
            for dimension, items in groupby(tags, key=lambda t: t.dimension)]
