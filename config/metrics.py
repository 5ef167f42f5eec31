"""Prometheus metrics: every process's own counters, and the readiness checks' numbers.

Web and worker processes write their counters to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode); ``/metrics``
on any web process of the machine sums them. Metrics are defined next to the
code that counts them (e.g. ``campaigns.metrics``), never here.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from crm.health import checks_answers


class ChecksCollector(Collector):
    """``tagwerk_check_ok{check}`` and each check's numbers, e.g.
    ``tagwerk_check_value{check="webhooks", value="lag_seconds"}``, computed at scrape time
    (the answers /readyz keeps for ``HEALTH_CACHE_SECONDS``); the broker's queue depths
    also as ``tagwerk_queue_depth{queue}``."""

    def collect(self):
        ok = GaugeMetricFamily("tagwerk_check_ok", "1 when the readiness check passes.",
                               labels=["check"])
        values = GaugeMetricFamily("tagwerk_check_value", "A number a readiness check reports.",
                                   labels=["check", "value"])
        queues = GaugeMetricFamily("tagwerk_queue_depth", "Tasks waiting in a broker queue.",
                                   labels=["queue"])
        for name, answer in checks_answers().items():
            ok.add_metric([name], 1.0 if answer["ok"] else 0.0)
            for key, value in answer["values"].items():
                if value is None:
                    continue
                values.add_metric([name, key], float(value))
                if name == "broker" and key.startswith("queue_"):
                    queues.add_metric([key.removeprefix("queue_")], float(value))
        yield ok
        yield values
        yield queues


CHECKS = CollectorRegistry()
CHECKS.register(ChecksCollector())


def processes_registry() -> CollectorRegistry:
    """The counters of every process of this machine (multiprocess mode), else this one's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def metrics_text() -> bytes:
    return generate_latest(processes_registry()) + generate_latest(CHECKS)
