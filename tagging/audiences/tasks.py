"""Celery tasks for audiences: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task

from tagging.audiences.index import changes_prune
from tagging.audiences.services import bulk_operation_run, segment_counts_refresh


@shared_task(acks_late=True)
def bulk_operation_run_task(bulk_id: int) -> None:
    bulk_operation_run(bulk_id=bulk_id)


@shared_task(acks_late=True)
def segment_counts_refresh_task() -> int:
    return segment_counts_refresh()


@shared_task
def tag_changes_prune_task() -> int:
    """Drop tag change-log rows every process's bitmaps have certainly seen (hourly)."""
    return changes_prune()

