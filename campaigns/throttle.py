"""A global token bucket per sending phone number.

Celery's ``rate_limit`` is per worker; WhatsApp's 80 messages/s is per phone
number, whatever the number of workers. The bucket is a GCRA with no burst:
each caller reserves the next free slot (slots are exactly 1/rate apart) and
sleeps until it, so no half-open 1-second window ever holds more than
``rate`` slots. With ``REDIS_URL`` the state lives in Redis (one Lua script,
atomic across all workers and hosts); without it, the embedded default uses a
row in the database (``Sender.tat``) under a row lock — correct across
processes, but slower (a write per message), so use Redis beyond a few dozen
messages per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.db import transaction

from campaigns.models import Sender

# KEYS[1]: theoretical arrival time (µs); KEYS[2]: slow-down factor.
# ARGV[1]: interval (µs); ARGV[2]: how far ahead a slot may be reserved (µs).
# Returns {wait in µs until the reserved slot (or -wait when nothing was reserved), slot in µs}.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local factor = tonumber(redis.call('GET', KEYS[2]) or '1')
local interval = tonumber(ARGV[1]) * factor
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[2]) then return {-wait, 0} end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', 60000)
return {wait, tat}
"""

# Push the bucket back (130429): nobody gets a slot for ``ARGV[1]`` µs. A refusal more
# than a second after the previous one, but within ``ARGV[2]`` ms of it, also doubles the
# interval (up to 8×) for that long. One refusal — or a few from one bunch of sends that
# scheduling jitter pushed together — costs a quarter second; refusals that keep coming
# mean the real limit is lower, and the rate backs off.
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[1])), 'PX', 60000)
if redis.call('SET', KEYS[4], '1', 'PX', 1000, 'NX') then
    local recent = redis.call('GET', KEYS[3])
    redis.call('SET', KEYS[3], '1', 'PX', tonumber(ARGV[2]))
    if recent then
        local factor = math.min(tonumber(redis.call('GET', KEYS[2]) or '1') * 2, 8)
        redis.call('SET', KEYS[2], tostring(factor), 'PX', tonumber(ARGV[2]))
    end
end
return 1
"""

MAX_AHEAD = 0.25  # seconds a caller may reserve ahead; keeps the sleep short
LATE = 0.02  # seconds a caller may wake after its slot and still use it (under the headroom)


class RateLimiterUnavailable(RuntimeError):
    """The bucket's store (Redis) cannot be reached: nothing may be sent until it answers.

    Falling back to the database bucket would not keep the rate: workers that still
    reach Redis and workers that do not would each allow the full rate.
    """


class Bucket:
    kind = "abstract"

    def __init__(self, phone_number_id: str, rate: float):
        self.phone_number_id, self.rate = phone_number_id, max(float(rate), 0.001)

    def reserve(self) -> float:
        """Reserve a slot; return seconds to wait for it, or -seconds when none was free."""
        raise NotImplementedError

    def acquire(self, ready: Callable[[], bool] | None = None) -> bool:
        """Block until this caller may send one message; False when ``ready`` says no.

        A caller that wakes more than ``LATE`` after its slot (a pause in the process)
        takes a fresh slot instead: sent late, its message would land next to the
        following ones and push a 1-second window over the limit. ``ready`` runs once,
        when the slot has come and before its lateness is checked: the send loop stamps
        the message there, as close to the request as it can be, and a stamp that made
        the slot late costs a fresh slot rather than a burst.
        """
        while True:
            wait = self.reserve()
            if wait >= 0:
                due = time.monotonic() + wait
                if wait:
                    time.sleep(wait)
                if ready is not None:
                    if not ready():
                        return False
                    ready = None
                if time.monotonic() - due <= LATE:
                    return True
                continue
            time.sleep(min(-wait - MAX_AHEAD, 0.05) if -wait > MAX_AHEAD else 0.001)

    def penalize(self, seconds: float = 1.0, slow_for: float = 30.0) -> None:
        raise NotImplementedError


class RedisBucket(Bucket):
    kind = "redis"

    def __init__(self, phone_number_id: str, rate: float, client=None):
        super().__init__(phone_number_id, rate)
        self.client = client or _redis_client(settings.REDIS_URL)
        self.keys = [f"tagwerk:bucket:{phone_number_id}", f"tagwerk:slow:{phone_number_id}",
                     f"tagwerk:refused:{phone_number_id}", f"tagwerk:burst:{phone_number_id}"]
        self._gcra = self.client.register_script(_GCRA)
        self._penalize = self.client.register_script(_PENALIZE)
        import redis

        self._unreachable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    #: Slot times (µs, Redis clock) this instance reserved; tests read them.
    slots: list[int]

    def reserve(self) -> float:
        try:
            wait, slot = self._gcra(keys=self.keys[:2], args=[int(1_000_000 / self.rate),
                                                         int(MAX_AHEAD * 1_000_000)])
        except self._unreachable as exc:
            raise RateLimiterUnavailable(str(exc)) from exc
        if int(wait) >= 0 and hasattr(self, "slots"):
            self.slots.append(int(slot))
        return int(wait) / 1_000_000

    def penalize(self, seconds: float = 1.0, slow_for: float = 30.0) -> None:
        try:
            self._penalize(keys=self.keys, args=[int(seconds * 1_000_000),
                                                 int(slow_for * 1000)])
        except self._unreachable as exc:
            raise RateLimiterUnavailable(str(exc)) from exc


class DatabaseBucket(Bucket):
    """The fallback: the same algorithm on ``Sender.tat`` under ``select_for_update``."""

    kind = "database"

    def reserve(self) -> float:
        Sender.objects.get_or_create(phone_number_id=self.phone_number_id)
        with transaction.atomic():
            sender = Sender.objects.select_for_update().get(phone_number_id=self.phone_number_id)
            now = time.time()
            tat = max(sender.tat, now)
            wait = tat - now
            if wait > MAX_AHEAD:
                return -wait
            Sender.objects.filter(pk=sender.pk).update(tat=tat + 1 / self.rate)
            return wait

    def penalize(self, seconds: float = 1.0, slow_for: float = 30.0) -> None:
        Sender.objects.get_or_create(phone_number_id=self.phone_number_id)
        with transaction.atomic():
            sender = Sender.objects.select_for_update().get(phone_number_id=self.phone_number_id)
            Sender.objects.filter(pk=sender.pk).update(tat=max(sender.tat, time.time()) + seconds)


@cache
def _redis_client(url: str):
    import redis  # only with REDIS_URL; the embedded default never loads it

    # Bounded waits: an unreachable host fails the call within seconds, not never.
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)


def get_bucket(phone_number_id: str, rate: float | None = None) -> Bucket:
    """The bucket for a number, running ``WHATSAPP_RATE_HEADROOM`` (2%) below ``rate``.

    Slots are exact, sends are not: a worker that wakes a few milliseconds
    late lands its message next to the following one. At 98% of 80/s, 80
    slots span 1.008 s, so one late message cannot push any 1-second window
    over 80 (and trigger 130429).
    """
    rate = (rate or settings.WHATSAPP_MAX_MPS) * (
        1 - getattr(settings, "WHATSAPP_RATE_HEADROOM", 0.02))
    if settings.REDIS_URL:
        return RedisBucket(phone_number_id, rate)
    return DatabaseBucket(phone_number_id, rate)
