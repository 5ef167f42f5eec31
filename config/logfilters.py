"""Logging filters named in ``LOGGING`` (config/settings/base.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping


class QuietTasks(logging.Filter):
    """Drop Celery's routine lines about the named tasks; keep their warnings and errors.

    Beat's 2-second tick would otherwise write "Sending due task" (``celery.beat``),
    "received" (``celery.worker.strategy``) and "succeeded" (``celery.app.trace``)
    around the clock. Attach it to those loggers: a logger's filter sees the records
    logged on that logger, before they propagate. Celery passes the task's name as
    a ``name`` key in the record's arguments (worker) or as the second argument
    (beat: entry name, task name).
    """

    def __init__(self, tasks: Iterable[str] = ()):
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or _task_of(record) not in self.tasks


def _task_of(record: logging.LogRecord) -> str | None:
    args = record.args
    if isinstance(args, Mapping):
        return args.get("name")
    if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], str):
        return args[1]
    return None
