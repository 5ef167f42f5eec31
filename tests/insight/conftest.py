"""Hand-built data for insight tests: contacts with chosen activity, tags with chosen holders."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tagging.models import AssignmentHistory, HistoryAction, Source, TagAssignment
from tests.factories import ContactFactory, DimensionFactory, TagFactory

LONG_AGO = timedelta(days=400)


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def contacts(db, now):
    """``contacts(n, idle_days=None, **fields)``: n contacts created long ago.

    ``idle_days`` sets their last interaction that many days before ``now``.
    """

    def make(n: int, idle_days: float | None = None, **fields):
        fields.setdefault("created_at", now - LONG_AGO)
        if idle_days is not None:
            fields["last_interaction_at"] = now - timedelta(days=idle_days)
        return [ContactFactory(**fields) for _ in range(n)]

    return make


@pytest.fixture
def tag(db, now):
    """``tag(name, dimension=None, holders=[])``: an old tag held by ``holders``.

    The holdings are written without history, as if imported before the log
    existed, so that no test sees a "use" it did not make itself.
    """

    def make(name: str, dimension=None, holders=(), **fields):
        fields.setdefault("created_at", now - LONG_AGO)
        t = TagFactory(name=name, dimension=dimension or DimensionFactory(), **fields)
        TagAssignment.objects.bulk_create(
            [TagAssignment(contact=c, tag=t, assigned_at=now - LONG_AGO) for c in holders])
        return t

    return make


def history(contact, tag, action: str, at) -> AssignmentHistory:
    return AssignmentHistory.objects.create(
        contact=contact, tag=tag, action=action, reason=Source.MANUAL, operation=uuid.uuid4(),
        at=at)


ADDED, REMOVED = HistoryAction.ADDED, HistoryAction.REMOVED


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Analytics are cached by tag ids, which a later test may reuse."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
