"""Fixtures for imports: a small vocabulary and a helper that runs an import like the admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from guardian.shortcuts import assign_perm

from tagging.imports.models import ConsentBasis, ImportJob
from tagging.imports.services import import_create, import_run
from tagging.models import AssignmentHistory, HistoryAction
from tests.factories import DimensionFactory, TagFactory, UserFactory

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def vocabulary(db):
    interest = DimensionFactory(name="Interesse")
    stage = DimensionFactory(name="Kaufphase", single_choice=True)
    internal = DimensionFactory(name="Intern")
    tags = {
        "VIP": TagFactory(name="VIP", dimension=interest),
        "Interesse-Sport": TagFactory(name="Interesse-Sport", dimension=interest),
        "Interesse-Essen": TagFactory(name="Interesse-Essen", dimension=interest),
        "Bestellt": TagFactory(name="Bestellt", dimension=stage),
        "Kaufphase-Abgeschlossen": TagFactory(name="Kaufphase-Abgeschlossen", dimension=stage),
        "Sperre": TagFactory(name="Sperre", dimension=internal),
    }
    return {"dimensions": {"Interesse": interest, "Kaufphase": stage, "Intern": internal},
            **tags}


@pytest.fixture
def marketer(vocabulary):
    """May apply tags of Interesse and Kaufphase, not of Intern."""
    user = UserFactory(is_staff=True)
    for name in ("Interesse", "Kaufphase"):
        assign_perm("tagging.apply_dimension_tags", user, vocabulary["dimensions"][name])
    return user


@pytest.fixture
def run_import(tmp_path):
    """``run_import(content_or_path, **options) -> job`` (refreshed after the run)."""

    def _run(content, *, name="contacts.csv", actor=None, **options):
        if isinstance(content, Path):
            path = content
        else:
            path = tmp_path / name
            path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        options.setdefault("consent_basis", ConsentBasis.OPTED_IN)
        options.setdefault("consent_source", "shop checkout")
        job = import_create(path=path, actor=actor, **options)
        import_run(job=job)
        job.refresh_from_db()
        return job

    return _run


def history_counts(job: ImportJob) -> dict[str, int]:
    """What the tag history holds for this import (the report's tag numbers must match)."""
    rows = AssignmentHistory.objects.filter(operation=job.operation)
    return {"added": rows.filter(action=HistoryAction.ADDED).count(),
            "removed": rows.filter(action=HistoryAction.REMOVED).count()}
