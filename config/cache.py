"""A Redis cache that lets pages render while Redis is unreachable.

Django's ``RedisCache`` raises when Redis cannot be reached, and the admin asks
the cache on every page (django-admin-interface keeps its theme there), so a
Redis outage would answer every admin page with a 500. ``ForgivingRedisCache``
treats an unreachable Redis as an empty cache that forgets what it is told: reads
miss, writes are dropped, ``add`` says "not added". It logs the outage once and
leaves Redis alone for ``QUIET_SECONDS``, so no request waits on connection
attempts meanwhile. Errors other than an unreachable server still raise.
"""

from __future__ import annotations

import logging
import time

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger(__name__)

QUIET_SECONDS = 5.0
_down_until: dict[tuple[str, ...], float] = {}  # per server list, for every thread


def _forgiving(name: str, fallback):
    method = getattr(RedisCacheClient, name)

    def call(self, *args, **kwargs):
        key = tuple(self._servers)
        if time.monotonic() < _down_until.get(key, 0.0):
            return fallback(*args)
        try:
            return method(self, *args, **kwargs)
        except (self._lib.exceptions.ConnectionError, self._lib.exceptions.TimeoutError) as exc:
            _down_until[key] = time.monotonic() + QUIET_SECONDS
            logger.warning("cache unreachable, serving without it for %ss: %s",
                           QUIET_SECONDS, exc)
            return fallback(*args)

    call.__name__ = name
    return call


def _missing(*args):
    raise ValueError("Key not found (the cache is unreachable).")


class ForgivingRedisCacheClient(RedisCacheClient):
    add = _forgiving("add", lambda *a: False)
    get = _forgiving("get", lambda key, default: default)
    set = _forgiving("set", lambda *a: None)
    touch = _forgiving("touch", lambda *a: False)
    delete = _forgiving("delete", lambda *a: False)
    get_many = _forgiving("get_many", lambda *a: {})
    has_key = _forgiving("has_key", lambda *a: False)
    incr = _forgiving("incr", _missing)
    set_many = _forgiving("set_many", lambda *a: None)
    delete_many = _forgiving("delete_many", lambda *a: None)
    clear = _forgiving("clear", lambda *a: False)


class ForgivingRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = ForgivingRedisCacheClient
