"""The global token bucket: never more than the rate in any 1-second window, across threads."""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from campaigns.throttle import MAX_AHEAD, DatabaseBucket, RedisBucket, get_bucket
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
    client.delete("tagwerk:bucket:test-number", "tagwerk:aimd:test-number")
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


def fresh(number: str, rate: float, clock=None) -> RedisBucket:
    client = _redis()
    require_service(client is not None, "Redis is not reachable on " + REDIS)
    bucket = RedisBucket(number, rate, client=client, clock=clock)
    client.delete(*bucket.keys)
    return bucket


class Clock:
    """A controllable clock (seconds) for the Lua scripts, instead of Redis's."""

    def __init__(self, start: float = 1_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


def simulate(bucket: RedisBucket, clock: Clock, seconds: float, refuse_every: int = 0,
             refusals_from: float = 0.0) -> list[float]:
    """A sender that always waits for its next slot and sends then; every
    ``refuse_every``-th message (after ``refusals_from``) is refused with 130429 and
    retried later (it takes a slot again). Returns the times of accepted messages."""
    start, accepted, sent = clock.now, [], 0
    while clock.now - start < seconds:
        (wait,) = bucket.reserve_many(1)
        if wait < 0:
            clock.now += -wait - MAX_AHEAD + 0.001
            continue
        clock.now += wait
        sent += 1
        if refuse_every and clock.now - start >= refusals_from and sent % refuse_every == 0:
            bucket.refused()
        else:
            accepted.append(clock.now - start)
    return accepted


@pytest.mark.parametrize("rate", [80, 1000])
def test_sporadic_refusals_cost_at_most_a_tenth_of_the_rate(rate):
    clock = Clock()
    bucket = fresh(f"sporadic-{rate}", rate * 0.98, clock)  # get_bucket's headroom
    accepted = simulate(bucket, clock, 60, refuse_every=100)  # 1 % refused, spread out
    assert len(accepted) >= 0.9 * rate * 60
    assert bucket.share() == 1.0  # never cut: no burst


def test_a_burst_of_refusals_halves_the_rate_and_pauses_the_number():
    clock = Clock()
    bucket = fresh("burst", 80, clock)
    simulate(bucket, clock, 2)
    for _ in range(4):  # 5 % of 80/s within one second: overload
        clock.now += 0.05
        bucket.refused()
    assert bucket.share() == pytest.approx(0.5)
    (wait,) = bucket.reserve_many(1)
    assert abs(wait) >= 0.99  # paused a second
    clock.now += 1.0
    waits = bucket.reserve_many(5)
    # A second later the rate has grown back from half to three quarters.
    assert waits[1] - waits[0] == pytest.approx(1 / (0.75 * 80), rel=0.05)


def test_the_rate_grows_back_to_full_within_seconds():
    clock = Clock()
    bucket = fresh("recover", 80, clock)
    for _ in range(3):  # three bursts in a row: an eighth of the rate
        for _ in range(4):
            bucket.refused()
        clock.now += 0.01
    assert bucket.share() == pytest.approx(1 / 8, rel=0.2)
    accepted = simulate(bucket, clock, 8)
    assert bucket.share() == 1.0
    # Back to the full rate after under 4 s (1/8 → 1 at a quarter of the rate per second).
    assert sum(1 for t in accepted if 4 <= t < 8) >= 0.99 * 80 * 4


def test_overload_that_goes_on_keeps_the_rate_down():
    clock = Clock()
    bucket = fresh("overload", 80, clock)
    accepted = simulate(bucket, clock, 10, refuse_every=4)  # a quarter refused
    assert bucket.share() < 1.0
    assert len(accepted) < 0.75 * 80 * 10


def test_the_cut_is_shared_by_every_worker():
    clock = Clock()
    one, other = fresh("shared", 80, clock), fresh("shared", 80, clock)
    for _ in range(4):
        one.refused()
    assert other.share() == pytest.approx(0.5)


def test_a_pause_stops_everyone_and_concurrent_pauses_do_not_add_up():
    clock = Clock()
    bucket = fresh("pause", 100, clock)
    bucket.pause(5.0)
    bucket.pause(5.0)
    (wait,) = bucket.reserve_many(1)
    assert wait == pytest.approx(-5.0, abs=0.01)


def test_reserve_many_hands_out_consecutive_slots_within_the_horizon():
    clock = Clock()
    bucket = fresh("many", 100, clock)
    waits = bucket.reserve_many(100)
    assert len(waits) == 26  # 0 … 0.25 s at 10 ms
    assert waits[0] == 0 and waits[-1] == pytest.approx(0.25)
    assert bucket.reserve_many(5)[0] < 0  # nothing left within the horizon


def test_headroom_keeps_the_bucket_under_the_configured_rate(settings):
    settings.REDIS_URL = ""
    assert get_bucket("x", 80).rate == pytest.approx(78.4)
