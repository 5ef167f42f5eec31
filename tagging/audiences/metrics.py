"""Prometheus metrics of the audience index (``tagging.audiences.index``)."""

from __future__ import annotations

from prometheus_client import Histogram

INDEX_REFRESH_SECONDS = Histogram(
    "tagwerk_audience_index_refresh_seconds",
    "How long this process's audience index took to come up to date before an answer: "
    "kind=probe (nothing new), catch_up (applied new changes), build (built from scratch).",
    ["kind"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                       1, 2.5, 5, 10, 30, 60))
