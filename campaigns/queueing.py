"""Queueing campaign tasks when the broker may be down: beat's tick is the backstop.

Every task queued here is queued again by the 2-second tick while its work waits
(the send task while sends are due, the drain while stored webhooks wait). So an
unreachable broker delays that work but loses none of it, and the request or
admin action that asked for it does not fail.

The same as ``crm.jobs.enqueue`` (by name, after commit, eager in tests), with the
publishing inside the try: ``enqueue`` defers itself to the commit, where a
caller's ``try`` no longer reaches.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnreachable

logger = logging.getLogger(__name__)


def queue_soon(task: str, *args) -> None:
    """Queue ``task`` once the current transaction commits; never raise for the broker."""
    transaction.on_commit(partial(_publish, task, args))


def _publish(task: str, args: tuple) -> None:
    try:
        current_app.tasks[task].apply_async(args)
    except BrokerUnreachable as exc:
        logger.warning("%s not queued, beat's tick will (broker unreachable: %s)", task, exc)
