"""Fixtures for the API tests: tokens of chosen scopes and a small client."""

from __future__ import annotations

import json

import pytest

from crm.models import ApiScope
from crm.tokens import api_token_create

ALL_SCOPES = list(ApiScope.values)


class Api:
    """Requests to ``/api/v1/`` with a bearer token; answers keep Django's test response."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token

    def _headers(self) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **params):
        return self.client.get(f"/api/v1{path}", params, **self._headers())

    def send(self, method: str, path: str, body=None, raw: str | bytes | None = None):
        data = raw if raw is not None else json.dumps(body)
        return getattr(self.client, method)(f"/api/v1{path}", data=data,
                                             content_type="application/json", **self._headers())

    def post(self, path: str, body=None, **kwargs):
        return self.send("post", path, body, **kwargs)

    def patch(self, path: str, body=None, **kwargs):
        return self.send("patch", path, body, **kwargs)


@pytest.fixture
def make_token(db):
    def make(scopes=ALL_SCOPES, *, dimensions=(), all_dimensions=None, name="Shop",
             rate_limit=100_000) -> str:
        if all_dimensions is None:
            all_dimensions = not dimensions
        return api_token_create(name=name, scopes=scopes, dimensions=[d.pk for d in dimensions],
                                all_dimensions=all_dimensions, rate_limit=rate_limit)[1]
    return make


@pytest.fixture
def api(client, make_token):
    """A client whose token holds every scope and every dimension."""
    return Api(client, make_token())


@pytest.fixture
def api_as(client, make_token):
    def make(*args, **kwargs) -> Api:
        return Api(client, make_token(*args, **kwargs))
    return make
