"""Thin Celery wrappers around the import services: ids in, one service call."""

from __future__ import annotations

from contextlib import suppress

from celery import shared_task

from crm.jobs import job_running
from tagging.imports.models import ImportJob
from tagging.imports.services import (
    IMPORT_JOB,
    IMPORT_UNDO_JOB,
    ImportRefused,
    import_analyse,
    import_previews_cleanup,
    import_run,
    import_undo,
)


@shared_task(acks_late=True)
def import_analyse_task(job_id: int) -> None:
    # A refused file is recorded on the job for the person who uploaded it.
    with suppress(ImportRefused):
        import_analyse(job=ImportJob.objects.get(pk=job_id))


@shared_task(acks_late=True)
def import_run_task(job_id: int) -> None:
    """Start or resume (after a worker died: ``crm.jobs``) an import; a duplicate returns."""
    with job_running(IMPORT_JOB, job_id) as claim, suppress(ImportRefused):
        if claim is not None:
            import_run(job=ImportJob.objects.get(pk=job_id), claim=claim)


@shared_task(acks_late=True)
def import_undo_task(job_id: int, actor_id: int | None = None) -> None:
    from django.contrib.auth import get_user_model

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    with job_running(IMPORT_UNDO_JOB, job_id) as claim:
        if claim is not None:
            import_undo(job=ImportJob.objects.get(pk=job_id), actor=actor)


@shared_task(acks_late=True)
def import_previews_cleanup_task() -> int:
    """Daily (beat): delete preview failed-rows files older than the retention period."""
    return import_previews_cleanup()
