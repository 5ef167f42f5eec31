"""Prometheus metrics every app shares: how long background jobs take.

The lowest layer holds them so imports, bulk operations and rules (each in its own
app, none importing another) count into one histogram. Metrics of one app live in
that app (``campaigns.metrics``, ``tagging.audiences.metrics``). With
``PROMETHEUS_MULTIPROC_DIR`` set, each process writes its values to a file there
and ``/metrics`` sums them (``config.metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import Histogram

# Jobs run from a fraction of a second (a small bulk change) to an hour (a large import).
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOB_SECONDS = Histogram(
    "tagwerk_job_duration_seconds",
    "How long a background job took, by kind (import_run, bulk_operation, rule_run …) "
    "and outcome (ok, refused, error).",
    ["kind", "outcome"], buckets=JOB_BUCKETS)


@dataclass
class JobOutcome:
    outcome: str = "ok"  # the job may say "refused" (or "error") without raising


@contextmanager
def job_timed(kind: str, *, refused: tuple[type[BaseException], ...] = ()
              ) -> Iterator[JobOutcome]:
    """Observe the block's duration under ``kind``. An exception of a ``refused`` type
    (the input was refused) counts as "refused", any other as "error"; the block may
    also set ``outcome`` itself."""
    result, started = JobOutcome(), time.monotonic()
    try:
        yield result
    except refused:
        result.outcome = "refused"
        raise
    except BaseException:
        result.outcome = "error"
        raise
    finally:
        JOB_SECONDS.labels(kind=kind, outcome=result.outcome).observe(
            time.monotonic() - started)
