"""Celery tasks for audiences: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task

from crm.jobs import job_running
from tagging.audiences.index import changes_prune
from tagging.audiences.services import BULK_JOB, bulk_operation_run, segment_counts_refresh


@shared_task(acks_late=True)
def bulk_operation_run_task(bulk_id: int) -> None:
    """Start or resume (after a worker died: ``crm.jobs``) a bulk operation; a duplicate
    returns."""
    with job_running(BULK_JOB, bulk_id) as claim:
        if claim is not None:
            bulk_operation_run(bulk_id=bulk_id, claim=claim)


@shared_task(acks_late=True)
def segment_counts_refresh_task() -> int:
    return segment_counts_refresh()


@shared_task
def tag_changes_prune_task() -> int:
    """Drop tag change-log rows every process's bitmaps have certainly seen (hourly)."""
    return changes_prune()

