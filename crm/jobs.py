"""Queueing work for a worker, shared by every app.

Services enqueue Celery tasks by name: an app's ``tasks`` module imports its
services, so a service importing ``tasks`` back would close a circle (the
name is the contract, as with a message queue). Each app imports its
``tasks`` in ``AppConfig.ready()``, so the name is registered in every process.

An unreachable broker never fails the request or admin action that queued the
work: the work is recorded in the database first, and beat's periodic tasks
(the campaign tick, the job sweeper, the dashboard refresh) queue it again.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)


def enqueue(task: str, *args, **kwargs) -> None:
    """Queue the task registered as ``task`` once the current transaction commits.

    Outside a transaction it is queued at once. Honours ``task_always_eager``
    (tests), unlike ``send_task``. Publishing happens inside ``on_commit``, where a
    caller's ``try`` no longer reaches, so the broker error is handled here.
    """
    transaction.on_commit(partial(_publish, task, args, kwargs))


def _publish(task: str, args: tuple, kwargs: dict) -> None:
    try:
        current_app.tasks[task].apply_async(args, kwargs)
    except BrokerUnreachable as exc:
        logger.warning("%s not queued; beat will queue it again (broker unreachable: %s)",
                       task, exc)
