"""gunicorn settings for production: ``gunicorn -c config/gunicorn.py config.wsgi``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory per machine, cleared
before start), each worker writes its metrics there and ``/metrics`` sums them;
a worker that exits has its live gauges dropped.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
# Threads: WhatsApp's status webhooks arrive many at once, and the intake's threads of a
# process share their INSERTs (campaigns.intake, group commit); each thread holds its own
# database connection, so a web machine uses workers × threads connections.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
accesslog = "-"


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
