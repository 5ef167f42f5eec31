import os

from celery import Celery
from celery.signals import worker_init, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("tagwerk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # every installed app's tasks.py, the nested ones included


@worker_init.connect
def _metrics_server(**kwargs) -> None:
    """A worker machine without a web process exposes its metrics on ``METRICS_PORT``."""
    port = os.environ.get("METRICS_PORT")
    if port:
        # Imported here: this module loads before Django's apps, config.metrics needs them.
        from prometheus_client import start_http_server

        from config.metrics import processes_registry

        start_http_server(int(port), registry=processes_registry())


@worker_process_shutdown.connect
def _metrics_process_dead(pid=None, **kwargs) -> None:
    """A pool process that exits has its live gauges dropped (multiprocess mode), as
    gunicorn's ``child_exit`` does for web workers; its counters stay counted."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
