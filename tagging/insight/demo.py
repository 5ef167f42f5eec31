"""Give the demo data a past, so the dashboard's trends and lifetimes have something to show.

``seed_demo`` applies every tag at the moment it runs. This spreads those
demo assignments (``source_ref="demo"``) over the past weeks, never before the
contact existed, deterministically for a seed. Demo data only: it rewrites
nothing else, and running it again gives the same dates.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from crm.models import Contact
from tagging.models import AssignmentHistory, TagAssignment


def demo_history_spread(*, weeks: int = 16, seed: int = 42) -> int:
    """Backdate the demo's assignments and their history; return how many were moved."""
    now = timezone.now()
    rows = list(AssignmentHistory.objects.filter(source_ref="demo").order_by("id")
                .values_list("id", "contact_id", "tag_id"))
    created = dict(Contact.objects.filter(pk__in={r[1] for r in rows})
                   .values_list("pk", "created_at"))
    history, when = [], {}
    for pk, contact_id, tag_id in rows:
        rng = random.Random(seed * 1_000_003 + pk)
        at = max(created[contact_id], now - timedelta(days=rng.uniform(0, weeks * 7)))
        history.append(AssignmentHistory(pk=pk, at=at))
        when[(contact_id, tag_id)] = at
    assignments = [
        TagAssignment(pk=a_pk, assigned_at=when[(c, t)])
        for a_pk, c, t in TagAssignment.objects.filter(source_ref="demo")
        .values_list("pk", "contact_id", "tag_id") if (c, t) in when
    ]
    with transaction.atomic():
        AssignmentHistory.objects.bulk_update(history, ["at"], batch_size=2000)
        TagAssignment.objects.bulk_update(assignments, ["assigned_at"], batch_size=2000)
    return len(history)
