"""The audience index's readiness numbers, for this process."""

from __future__ import annotations

from crm.health import CheckResult
from tagging.audiences import index


def index_check() -> CheckResult:
    """How long ago this process's in-memory index last caught up (none: not built here)."""
    age = index.age_seconds()
    if age is None:
        return CheckResult(True, "not built in this process", {"age_seconds": None})
    return CheckResult(True, f"caught up {age:.0f} s ago", {"age_seconds": age})
