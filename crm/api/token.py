"""``GET /api/v1/token/``: what the calling token may do (for a developer checking setup)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema

from crm.api.framework import TokenAuth, responses
from crm.tokens import api_token_rate, dimension_names

router = Router(tags=["token"])


class TokenOut(Schema):
    name: str
    prefix: str
    scopes: list[str]
    dimensions: list[str]
    requests_per_minute: int
    burst: int


@router.get("/token/", auth=TokenAuth(), response=responses({200: TokenOut}),
            summary="The calling token",
            description="Any valid token. Its scopes, the dimensions whose tags it may change "
                        "(`[\"*\"]`: all) and its rate limit.")
def token_get(request: HttpRequest):
    token = request.auth
    rate = api_token_rate(token)
    return {"name": token.name, "prefix": token.prefix, "scopes": token.scopes,
            "dimensions": dimension_names(token), "requests_per_minute": rate.per_minute,
            "burst": rate.burst}
