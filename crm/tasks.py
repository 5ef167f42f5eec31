"""Thin Celery wrappers for crm."""

from __future__ import annotations

from celery import shared_task

from crm.jobs import jobs_sweep


@shared_task
def jobs_sweep_task() -> dict[str, int]:
    """Beat, every TAGWERK_JOB_SWEEP_SECONDS: resume or fail long jobs whose worker died."""
    return jobs_sweep()
