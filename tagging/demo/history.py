"""Give the demo data a past, so the dashboard's trends and lifetimes have something to show.

``seed_demo`` applies every tag at the moment it runs. This spreads those
demo assignments (``source_ref="demo"``) over the past weeks, never before the
contact existed, deterministically for a seed. Demo data only: it rewrites
nothing else, and running it again gives the same dates.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from crm.models import Contact
from tagging.models import AssignmentHistory, TagAssignment

BUCKETS_PER_DAY = 1


def demo_history_spread(*, weeks: int = 16, seed: int = 42) -> int:
    """Backdate the demo's assignments and their history; return how many rows were moved.

    Set-based: one UPDATE per day of the period (rows fall into a
    bucket by a hash of their id), then a clamp to the contact's creation.
    """
    now = timezone.now()
    buckets = weeks * 7 * BUCKETS_PER_DAY
    demo = AssignmentHistory.objects.filter(source_ref="demo")
    moved = 0
    with transaction.atomic():
        for k in range(buckets):
            moved += demo.extra(
                where=["((id + %s) * 7919) %% %s = %s"], params=[seed, buckets, k],
            ).update(at=now - timedelta(hours=24 / BUCKETS_PER_DAY * k))
        created = Contact.objects.filter(pk=OuterRef("contact_id")).values("created_at")[:1]
        demo.filter(at__lt=Subquery(created)).update(at=Subquery(created))
        held_since = (AssignmentHistory.objects.filter(
            source_ref="demo", contact_id=OuterRef("contact_id"), tag_id=OuterRef("tag_id"))
            .order_by("-at").values("at")[:1])
        TagAssignment.objects.filter(source_ref="demo").update(assigned_at=Subquery(held_since))
    return moved
