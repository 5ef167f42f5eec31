"""gunicorn settings for production: ``gunicorn -c config/gunicorn.py config.wsgi``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory per machine, cleared
before start), each worker writes its metrics there and ``/metrics`` sums them;
a worker that exits has its live gauges dropped.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
accesslog = "-"


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
