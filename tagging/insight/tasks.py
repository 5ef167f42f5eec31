"""Beat wrappers: thin, ids and plain values in, one service call each."""

from __future__ import annotations

from celery import shared_task

from tagging.insight import services


@shared_task(name="tagging.insight.tasks.health_report_task", acks_late=True)
def health_report_task(recipients: list[str] | None = None, base_url: str = "") -> int:
    """Weekly report (the beat entry's kwargs hold ``recipients``); return the report id."""
    return services.health_report_weekly(recipients=recipients, base_url=base_url).pk


@shared_task(name="tagging.insight.tasks.dashboard_refresh_task", acks_late=True)
def dashboard_refresh_task() -> int:
    """Recompute the dashboard snapshot; return its id."""
    return services.dashboard_snapshot_refresh().pk
