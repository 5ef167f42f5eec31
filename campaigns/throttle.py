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

Callers reserve slots in runs (``reserve_many``: one Redis call for a batch's
requests, each still its own slot). WhatsApp's 130429 feeds an AIMD: a single
refusal costs two slots; a burst of them (real overload) halves the rate and
pauses the number a second; the rate then grows back to the configured one
within seconds. The state is shared like the bucket itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.db import transaction

from campaigns.models import Sender

# Shared by both scripts: the clock (ARGV's µs in tests, else Redis's own) and the
# share of the configured rate allowed now: cut on a burst of refusals, then growing back
# by ``recover`` of the rate per second (AIMD).
_COMMON = """
local function clock(given)
  local now = tonumber(given)
  if now and now > 0 then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function share(key, now, recover)
  local s = redis.call('HMGET', key, 'f', 'at')
  local f = tonumber(s[1]) or 1
  if f >= 1 then return 1 end
  f = f + (now - (tonumber(s[2]) or now)) / 1000000 * recover
  if f > 1 then return 1 end
  return f
end
"""

# KEYS[1]: theoretical arrival time (µs); KEYS[2]: the AIMD state (hash).
# ARGV: interval at full rate (µs), how far ahead slots may be reserved (µs), slots wanted,
# clock (µs, 0 = Redis's), recovery per second.
# Returns {now, wait…}: the waits (µs) until each reserved slot, consecutive, as many as
# fit within the horizon; {now, -wait} when none was free.
_GCRA = _COMMON + """
local now = clock(ARGV[4])
local interval = tonumber(ARGV[1]) / share(KEYS[2], now, tonumber(ARGV[5]))
local ahead, want = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > ahead then return {now, -(tat - now)} end
local out = {now}
while #out <= want and tat - now <= ahead do
  out[#out + 1] = tat - now
  tat = tat + interval
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', 60000)
return out
"""

# One 130429. ARGV: interval at full rate (µs), slots to push back, window (µs), refusals
# within it that mean overload, cut factor, floor, pause after a cut (µs), clock, recovery.
# A refusal costs ``push`` slots; ``burst`` refusals within one window cut the rate and
# pause the number. Returns 1 when the rate was cut.
_REFUSED = _COMMON + """
local now = clock(ARGV[8])
local recover = tonumber(ARGV[9])
local f = share(KEYS[2], now, recover)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[2]) * tonumber(ARGV[1]) / f
local s = redis.call('HMGET', KEYS[2], 'n', 'w')
local n, w = (tonumber(s[1]) or 0) + 1, tonumber(s[2]) or 0
if now - w > tonumber(ARGV[3]) then n, w = 1, now end
local cut = 0
if n >= tonumber(ARGV[4]) then
  f = math.max(f * tonumber(ARGV[5]), tonumber(ARGV[6]))
  n, w, cut = 0, now, 1
  redis.call('HSET', KEYS[2], 'f', tostring(f), 'at', string.format('%.0f', now))
  if tat < now + tonumber(ARGV[7]) then tat = now + tonumber(ARGV[7]) end
end
redis.call('HSET', KEYS[2], 'n', n, 'w', string.format('%.0f', w))
redis.call('PEXPIRE', KEYS[2], 60000)
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', 60000)
return cut
"""

# A fixed pause (app-level call limits): nobody gets a slot for ARGV[1] µs. Concurrent
# refusals of one moment do not add up.
_PAUSE = _COMMON + """
local now = clock(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now + tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], string.format('%.0f', now + tonumber(ARGV[1])), 'PX', 60000)
end
return 1
"""

MAX_AHEAD = 0.25  # seconds a caller may reserve ahead; keeps the sleep short
LATE = 0.02  # seconds a caller may wake after its slot and still use it (under the headroom)
# 130429 (docs/campaigns.md, "Throttle"): one refusal costs PUSH_SLOTS slots; BURST_SHARE of
# the rate (at least BURST_MIN) refused within REFUSAL_WINDOW seconds is overload: the rate
# is cut by CUT (not below FLOOR), the number pauses BURST_PAUSE seconds, and the rate grows
# back by RECOVER of the configured rate per second (from half to full in 2 s).
PUSH_SLOTS, REFUSAL_WINDOW, BURST_SHARE, BURST_MIN = 2, 1.0, 0.05, 3
CUT, FLOOR, BURST_PAUSE, RECOVER = 0.5, 1 / 16, 1.0, 0.25


class RateLimiterUnavailable(RuntimeError):
    """The bucket's store (Redis) cannot be reached: nothing may be sent until it answers.

    Falling back to the database bucket would not keep the rate: workers that still
    reach Redis and workers that do not would each allow the full rate.
    """


class Bucket:
    kind = "abstract"

    def __init__(self, phone_number_id: str, rate: float):
        self.phone_number_id, self.rate = phone_number_id, max(float(rate), 0.001)

    def reserve_many(self, count: int) -> list[float]:
        """Reserve up to ``count`` consecutive slots, each its own token, as many as fit
        within ``MAX_AHEAD``; return the seconds to wait for each, or ``[-seconds]`` when
        none was free."""
        raise NotImplementedError

    def reserve(self) -> float:
        """Reserve a slot; return seconds to wait for it, or -seconds when none was free."""
        return self.reserve_many(1)[0]

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
            time.sleep(busy_wait(wait))

    def refused(self) -> bool:
        """WhatsApp answered 130429 (throughput): push back a little, cut on a burst.

        Returns True when this refusal made a burst and cut the rate."""
        raise NotImplementedError

    def pause(self, seconds: float) -> None:
        """Give nobody a slot for ``seconds`` (app-level call limits)."""
        raise NotImplementedError


def busy_wait(wait: float) -> float:
    """How long to sleep before asking again, after ``reserve`` answered ``wait`` < 0."""
    return min(-wait - MAX_AHEAD, 0.05) if -wait > MAX_AHEAD else 0.001


class RedisBucket(Bucket):
    """The bucket and its AIMD state in Redis, changed only by Lua scripts (atomic across
    workers and hosts). ``clock`` (seconds) replaces Redis's clock in tests."""

    kind = "redis"

    def __init__(self, phone_number_id: str, rate: float, client=None,
                 clock: Callable[[], float] | None = None):
        super().__init__(phone_number_id, rate)
        self.client = client or _redis_client(settings.REDIS_URL)
        self.clock = clock
        self.keys = [f"tagwerk:bucket:{phone_number_id}", f"tagwerk:aimd:{phone_number_id}"]
        self._gcra = self.client.register_script(_GCRA)
        self._refused = self.client.register_script(_REFUSED)
        self._pause = self.client.register_script(_PAUSE)
        import redis

        self._unreachable = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    #: Slot times (µs, Redis clock) this instance reserved; tests read them.
    slots: list[int]

    @property
    def interval(self) -> int:
        return int(1_000_000 / self.rate)

    def _now(self) -> int:
        return int(self.clock() * 1_000_000) if self.clock else 0

    def _run(self, script, args: list) -> list | int:
        try:
            return script(keys=self.keys, args=args)
        except self._unreachable as exc:
            raise RateLimiterUnavailable(str(exc)) from exc

    def reserve_many(self, count: int) -> list[float]:
        now, *waits = self._run(self._gcra, [self.interval, int(MAX_AHEAD * 1_000_000),
                                             max(1, count), self._now(), RECOVER])
        if int(waits[0]) >= 0 and hasattr(self, "slots"):
            self.slots.extend(int(now) + int(w) for w in waits)
        return [int(w) / 1_000_000 for w in waits]

    def refused(self) -> bool:
        burst = max(BURST_MIN, math.ceil(self.rate * REFUSAL_WINDOW * BURST_SHARE))
        return bool(self._run(self._refused, [
            self.interval, PUSH_SLOTS, int(REFUSAL_WINDOW * 1_000_000), burst, CUT, FLOOR,
            int(BURST_PAUSE * 1_000_000), self._now(), RECOVER]))

    def pause(self, seconds: float) -> None:
        self._run(self._pause, [int(seconds * 1_000_000), self._now()])

    def share(self) -> float:
        """The share of the configured rate allowed now (1.0 unless refusals cut it)."""
        return float(self.client.eval(_COMMON + "return tostring(share(KEYS[1], clock(ARGV[1]), "
                                      "tonumber(ARGV[2])))", 1, self.keys[1], self._now(),
                                      RECOVER))


class DatabaseBucket(Bucket):
    """The fallback: the same GCRA on ``Sender.tat`` under ``select_for_update``.

    Refusals push it back but never cut the rate (it keeps no AIMD state): use Redis
    for real volumes.
    """

    kind = "database"

    def reserve_many(self, count: int) -> list[float]:
        Sender.objects.get_or_create(phone_number_id=self.phone_number_id)
        with transaction.atomic():
            sender = Sender.objects.select_for_update().get(phone_number_id=self.phone_number_id)
            now = time.time()
            tat = max(sender.tat, now)
            if tat - now > MAX_AHEAD:
                return [-(tat - now)]
            waits = []
            while len(waits) < max(1, count) and tat - now <= MAX_AHEAD:
                waits.append(tat - now)
                tat += 1 / self.rate
            Sender.objects.filter(pk=sender.pk).update(tat=tat)
            return waits

    def _push(self, until: Callable[[float, float], float]) -> None:
        Sender.objects.get_or_create(phone_number_id=self.phone_number_id)
        with transaction.atomic():
            sender = Sender.objects.select_for_update().get(phone_number_id=self.phone_number_id)
            Sender.objects.filter(pk=sender.pk).update(tat=until(sender.tat, time.time()))

    def refused(self) -> bool:
        self._push(lambda tat, now: max(tat, now) + PUSH_SLOTS / self.rate)
        return False

    def pause(self, seconds: float) -> None:
        self._push(lambda tat, now: max(tat, now + seconds))


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
