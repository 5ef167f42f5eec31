"""Give the demo data a past, so the dashboard's trends and lifetimes have something to show.

``seed_demo`` applies every tag at the moment it runs. This spreads those
demo assignments (``source_ref="demo"``) over the past weeks, never before the
contact existed, deterministically for a seed. Demo data only: the tag-change
service rewrites nothing else, and running it again gives the same dates.
"""

from __future__ import annotations

from tagging.services import assignments_backdate


def demo_history_spread(*, weeks: int = 16, seed: int = 42) -> int:
    """Backdate the demo's assignments and their history; return how many rows were moved."""
    return assignments_backdate(source_ref="demo", days=weeks * 7, seed=seed)
