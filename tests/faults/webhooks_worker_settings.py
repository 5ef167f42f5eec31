"""Settings of the Celery workers the send fault test starts: the production settings,
with queues of the test's own (parallel test runs on one broker never share work)."""

import os

from config.settings.base import *  # noqa: F403

_QUEUE = os.environ["TAGWERK_FAULT_QUEUE"]
CELERY_TASK_DEFAULT_QUEUE = _QUEUE
CELERY_TASK_ROUTES = {"campaigns.tasks.webhooks_drain_task": {"queue": f"{_QUEUE}-webhooks"}}
