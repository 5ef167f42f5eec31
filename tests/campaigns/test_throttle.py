"""The global token bucket: never more than the rate in any 1-second window, across threads."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from campaigns.throttle import DatabaseBucket, RedisBucket, get_bucket
from tests.conftest import require_service

REDIS = os.environ.get("TAGWERK_TEST_REDIS_URL", "redis://127.0.0.1:6379/6")


def _redis():
    try:
        import redis

        client = redis.Redis.from_url(REDIS, socket_connect_timeout=0.5)
        client.ping()
        return client
    except Exception:  # any failure means "not available"
        return None


def _hammer(bucket, threads: int, each: int) -> list[float]:
    times, lock = [], threading.Lock()

    def work():
        for _ in range(each):
            bucket.acquire()
            with lock:
                times.append(time.monotonic())

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sorted(times)


def _max_in_window(times: list[float]) -> int:
    best, left = 0, 0
    for right, at in enumerate(times):
        while at - times[left] >= 1.0:
            left += 1
        best = max(best, right - left + 1)
    return best


def test_redis_bucket_is_global_across_threads():
    client = _redis()
    require_service(client is not None, "Redis is not reachable on " + REDIS)
    client.delete("tagwerk:bucket:test-number", "tagwerk:slow:test-number")
    bucket = RedisBucket("test-number", 40, client=client)
    bucket.slots = []
    times = _hammer(bucket, threads=4, each=15)
    # The guarantee is on the slots handed out (wake-ups jitter with machine load; a
    # thread that wakes too late gives its slot up and takes another).
    slots = sorted(bucket.slots)
    assert len(times) == 60 and len(slots) >= 60 and len(set(slots)) == len(slots)
    assert min(b - a for a, b in itertools.pairwise(slots)) >= 25_000 - 1
    assert _max_in_window([s / 1e6 for s in slots]) <= 40
    assert times[-1] - times[0] >= 59 / 40 - 0.05


@pytest.mark.django_db(transaction=True)
def test_database_bucket_spaces_slots():
    bucket = DatabaseBucket("db-number", 50)
    times = _hammer(bucket, threads=1, each=30)
    assert times[-1] - times[0] >= 29 / 50 - 0.01


def test_penalty_pushes_everyone_back():
    client = _redis()
    require_service(client is not None, "Redis is not reachable on " + REDIS)
    client.delete("tagwerk:bucket:p-number", "tagwerk:slow:p-number")
    bucket = RedisBucket("p-number", 100, client=client)
    bucket.acquire()
    bucket.penalize(0.3, slow_for=1.0)
    started = time.monotonic()
    bucket.acquire()
    assert time.monotonic() - started >= 0.25


def test_one_refusal_pauses_repeated_refusals_slow_the_number_down():
    client = _redis()
    require_service(client is not None, "Redis is not reachable on " + REDIS)
    keys = ["tagwerk:bucket:r-number", "tagwerk:slow:r-number", "tagwerk:refused:r-number",
            "tagwerk:burst:r-number"]
    client.delete(*keys)
    bucket = RedisBucket("r-number", 100, client=client)
    for _ in range(5):  # one bunch of refused sends
        bucket.penalize(0.0, slow_for=5.0)
    assert client.get(keys[1]) is None  # no slow-down for a single event
    client.delete(keys[3])  # … a second later (the burst marker has expired) …
    bucket.penalize(0.0, slow_for=5.0)
    assert float(client.get(keys[1])) == 2  # … refusals again: half rate
    client.delete(keys[3])
    bucket.penalize(0.0, slow_for=5.0)
    assert float(client.get(keys[1])) == 4
    client.delete(*keys)


def test_headroom_keeps_the_bucket_under_the_configured_rate(settings):
    settings.REDIS_URL = ""
    assert get_bucket("x", 80).rate == pytest.approx(78.4)
