"""Writes and checks on API tokens.

Tokens look like ``tw_<40 url-safe characters>``. Only the SHA-256 of the
whole token is stored, so a leaked database does not leak usable tokens; a
lookup is one indexed query on that hash.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import timedelta

from django.utils import timezone

from crm.models import ApiScope, ApiToken

TOKEN_PREFIX = "tw_"
# last_used_at is for people ("is this token still in use?"); writing it on
# every request would turn each API call into an extra UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, name: str, scopes: Sequence[str] = (ApiScope.EVENTS_WRITE,),
                     created_by=None) -> tuple[ApiToken, str]:
    """Create a token; return it and the secret, which is never shown again."""
    unknown = set(scopes) - set(ApiScope.values)
    if unknown:
        raise ValueError(f"unknown scopes: {', '.join(sorted(unknown))}")
    token = ApiToken(name=name, scopes=list(dict.fromkeys(scopes)), created_by=created_by)
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
