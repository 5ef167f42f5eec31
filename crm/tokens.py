"""Writes and checks on API tokens: issuing, revoking, authenticating, rate limiting.

Tokens look like ``tw_<40 url-safe characters>``. Only the SHA-256 of the
whole token is stored, so a leaked database does not leak usable tokens; a
lookup is one indexed query on that hash.

A token carries scopes (``ApiScope``) and, for the scopes that change tags,
the dimensions it may change. Dimensions belong to ``tagging``, which this app
never imports: ``tagging`` registers a ``DimensionCatalog`` from its
``AppConfig.ready()`` so that the command and the admin can name them.

Rate limits are a token bucket per token (GCRA: one stored time per token):
``rate_limit`` requests a minute (default ``TAGWERK_API_RATE_PER_MINUTE``) with
bursts of ``TAGWERK_API_BURST``. With ``REDIS_URL`` the bucket lives in Redis and
one Lua script takes from it atomically, across all web processes and hosts;
without it, in Django's cache (per process with the embedded default).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.core.cache import cache as django_cache
from django.core.cache.backends.locmem import LocMemCache
from django.utils import timezone

from crm.models import TAG_CHANGING_SCOPES, ApiScope, ApiToken

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "tw_"
# last_used_at is for people ("is this token still in use?"); writing it on
# every request would turn each API call into an extra UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenError(ValueError):
    """The token asked for cannot be made as asked; the message says why."""


# --- dimensions, named by the app that owns them ------------------------------------------


@dataclass(frozen=True)
class DimensionCatalog:
    """How ``crm`` names dimensions without importing ``tagging``.

    ``ids`` maps names (compared as the vocabulary compares them) to ids and returns
    the names it does not know; ``names`` gives the names of ids; ``choices`` lists
    ``(id, name)`` for forms.
    """

    ids: Callable[[Sequence[str]], tuple[dict[str, int], list[str]]]
    names: Callable[[Sequence[int]], list[str]]
    choices: Callable[[], list[tuple[int, str]]]


_catalog: list[DimensionCatalog] = []


def dimension_catalog_register(catalog: DimensionCatalog) -> None:
    """Let tokens name dimensions; called by ``tagging`` from its ``ready()``."""
    _catalog[:] = [catalog]


def dimension_catalog() -> DimensionCatalog | None:
    return _catalog[0] if _catalog else None


def dimension_ids(names: Sequence[str]) -> list[int]:
    """Ids of the dimensions ``names``; ``ApiTokenError`` naming any that do not exist."""
    catalog = dimension_catalog()
    if catalog is None:
        raise ApiTokenError("No app provides dimensions (is tagging installed?).")
    found, unknown = catalog.ids(names)
    if unknown:
        known = ", ".join(name for _id, name in catalog.choices()) or "none"
        raise ApiTokenError(f"Unknown dimension(s): {', '.join(unknown)}. Known: {known}.")
    return list(dict.fromkeys(found.values()))


def dimension_names(token: ApiToken) -> list[str]:
    """The names of the dimensions ``token`` may change (``["*"]`` for all of them)."""
    if token.all_dimensions:
        return ["*"]
    catalog = dimension_catalog()
    return catalog.names(token.dimensions) if catalog else [str(i) for i in token.dimensions]


# --- issuing and revoking -------------------------------------------------------------------


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_check(*, scopes: Sequence[str], dimensions: Sequence[int] = (),
                    all_dimensions: bool = False) -> None:
    """Raise ``ApiTokenError`` for scopes that do not exist or tag-changing scopes without
    dimensions (a token that may change tags says which)."""
    unknown = set(scopes) - set(ApiScope.values)
    if unknown:
        raise ApiTokenError(f"Unknown scope(s): {', '.join(sorted(unknown))}. "
                            f"Known: {', '.join(ApiScope.values)}.")
    changing = sorted(set(scopes) & TAG_CHANGING_SCOPES)
    if changing and not (dimensions or all_dimensions):
        raise ApiTokenError(f"The scope(s) {', '.join(changing)} change tags: name the "
                            "dimensions the token may change (or allow all of them).")


def api_token_create(*, name: str, scopes: Sequence[str] = (ApiScope.EVENTS_WRITE,),
                     dimensions: Sequence[int] = (), all_dimensions: bool = False,
                     rate_limit: int | None = None, created_by=None) -> tuple[ApiToken, str]:
    """Create a token; return it and the secret, which is never shown again."""
    api_token_check(scopes=scopes, dimensions=dimensions, all_dimensions=all_dimensions)
    token = ApiToken(name=name, scopes=list(dict.fromkeys(scopes)),
                     dimensions=list(dict.fromkeys(dimensions)), all_dimensions=all_dimensions,
                     rate_limit=rate_limit, created_by=created_by)
    return token, api_token_issue(token=token)


def api_token_issue(*, token: ApiToken) -> str:
    """Give the unsaved ``token`` a fresh secret, save it, and return the secret."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(30)
    token.prefix, token.token_hash = raw[:10], _hash(raw)
    token.save()
    return raw


def api_tokens_revoke(*, tokens) -> int:
    """Revoke ``tokens`` (a queryset); revoking twice changes nothing. Return how many changed."""
    return tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The active token for ``raw``, or None; marks it used (at most once a minute)."""
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None
    token = ApiToken.objects.filter(token_hash=_hash(raw), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


# --- rate limits ----------------------------------------------------------------------------

# KEYS[1]: the theoretical arrival time (µs, Redis clock). ARGV[1]: µs per request;
# ARGV[2]: how far ahead of now the arrival time may run (µs): (burst - 1) intervals.
# Returns 0 when the request may go (and books it), else the µs to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local ahead = tat - now
if ahead > tonumber(ARGV[2]) then return ahead - tonumber(ARGV[2]) end
local new = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil((new - now) / 1000) + 1000)
return 0
"""


@dataclass(frozen=True)
class Rate:
    per_minute: int
    burst: int

    @property
    def interval(self) -> float:
        return 60.0 / self.per_minute

    @property
    def tolerance(self) -> float:
        return self.interval * (self.burst - 1)


def api_token_rate(token: ApiToken) -> Rate:
    per_minute = token.rate_limit or settings.TAGWERK_API_RATE_PER_MINUTE
    return Rate(max(per_minute, 1), max(settings.TAGWERK_API_BURST, 1))


def api_token_throttle(token: ApiToken) -> float:
    """Take one request from ``token``'s bucket: 0 when it may go, else seconds to wait."""
    rate = api_token_rate(token)
    key = f"tagwerk:api-rate:{token.token_hash[:24]}"
    if settings.REDIS_URL and time.monotonic() >= _redis_down_until:
        try:
            return _redis_throttle(key, rate)
        except _redis_unreachable() as error:
            _redis_down(error)
    # The embedded default, and a Redis outage: this process's own bucket (the limit then
    # holds per web process) rather than a 500 for every API request.
    return _cache_throttle(key, rate, django_cache if not settings.REDIS_URL else _local)


def _redis_throttle(key: str, rate: Rate) -> float:
    script = _redis_script(settings.REDIS_URL)
    wait = int(script(keys=[key], args=[int(rate.interval * 1e6), int(rate.tolerance * 1e6)]))
    return wait / 1e6


# While Redis is unreachable, ask it again only after this many seconds (as config.cache).
REDIS_QUIET_SECONDS = 5.0
_redis_down_until = 0.0
_local = LocMemCache("tagwerk-api-rate", {"MAX_ENTRIES": 10_000})


def _redis_unreachable() -> tuple[type[Exception], ...]:
    import redis

    return (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _redis_down(error: Exception) -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + REDIS_QUIET_SECONDS
    logger.warning("Redis unreachable, API rate limits per process for %ss: %s",
                   REDIS_QUIET_SECONDS, error)


def _cache_throttle(key: str, rate: Rate, store=django_cache) -> float:
    """The same algorithm in a Django cache: not atomic across processes (a race lets a
    request or two through), which only the embedded default and a Redis outage use."""
    now = time.time()
    tat = max(store.get(key, 0.0), now)
    if tat - now > rate.tolerance:
        return tat - now - rate.tolerance
    store.set(key, tat + rate.interval, timeout=int(tat + rate.interval - now) + 1)
    return 0.0


@cache
def _redis_script(url: str):
    import redis  # only with REDIS_URL; the embedded default never loads it

    return redis.Redis.from_url(url).register_script(_GCRA)
