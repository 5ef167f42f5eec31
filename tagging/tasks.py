"""Celery tasks of the tagging app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from tagging.services import expired_assignments_remove


@shared_task(acks_late=True)
def expired_assignments_remove_task() -> int:
    """Remove expired assignments (run hourly by beat); a repeat finds nothing left to do."""
    return expired_assignments_remove()
