"""Shared fixtures.

Tests that need a real service (PostgreSQL, Redis, Chromium) call
``require_service``: it skips with the reason when the service is absent, and
fails instead when ``TAGWERK_REQUIRE_SERVICES=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

import os

import pytest

from tests.factories import ContactFactory, DimensionFactory, TagFactory, UserFactory

STRICT = os.environ.get("TAGWERK_REQUIRE_SERVICES") == "1"


def require_service(available: bool, reason: str) -> None:
    if available:
        return
    if STRICT:
        pytest.fail(f"required service missing (TAGWERK_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def make_contact(db):
    return ContactFactory


@pytest.fixture
def make_tag(db):
    return TagFactory


@pytest.fixture
def make_dimension(db):
    return DimensionFactory


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True)


@pytest.fixture
def staff_user(db):
    return UserFactory(is_staff=True)


def needs_postgresql(why: str = "needs a database shared between processes") -> None:
    """Skip on the SQLite pass: the test runs in the PostgreSQL pass (``.ci/run`` runs both)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip(f"{why}: runs in the PostgreSQL pass")
