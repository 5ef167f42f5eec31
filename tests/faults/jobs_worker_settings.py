"""Settings of the Celery workers the job fault tests start: the production settings
(visibility timeout, job lease and sweeper as shipped), with queues of the test's own
(parallel test runs on one broker never share work)."""

import os

from config.settings.base import *  # noqa: F403

_QUEUE = os.environ["TAGWERK_FAULT_QUEUE"]
CELERY_TASK_DEFAULT_QUEUE = _QUEUE
CELERY_TASK_ROUTES = {
    "tagging.imports.tasks.*": {"queue": f"{_QUEUE}-jobs"},
    "tagging.audiences.tasks.bulk_operation_run_task": {"queue": f"{_QUEUE}-jobs"},
    "tagging.rules.tasks.rule_run_task": {"queue": f"{_QUEUE}-jobs"},
}
