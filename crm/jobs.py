"""Queueing work for a worker, shared by every app.

Services enqueue Celery tasks by name: an app's ``tasks`` module imports its
services, so a service importing ``tasks`` back would close a circle (the
name is the contract, as with a message queue). Each app imports its
``tasks`` in ``AppConfig.ready()``, so the name is registered in every process.
"""

from __future__ import annotations

from celery import current_app
from django.db import transaction


def enqueue(task: str, *args, **kwargs) -> None:
    """Queue the task registered as ``task`` once the current transaction commits.

    Outside a transaction it is queued at once. Honours ``task_always_eager``
    (tests), unlike ``send_task``.
    """
    transaction.on_commit(lambda: current_app.tasks[task].apply_async(args, kwargs))
