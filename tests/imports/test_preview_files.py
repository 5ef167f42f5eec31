"""The failed-rows files of previews (dry runs) do not pile up under MEDIA_ROOT."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tagging.imports.models import ConsentBasis, ImportJob
from tagging.imports.services import import_analyse, import_create, import_run
from tagging.imports.tasks import import_previews_cleanup_task
from tests.imports.conftest import CORPUS

pytestmark = pytest.mark.django_db


def previewed_job() -> tuple[ImportJob, Path]:
    job = import_create(path=CORPUS / "mixed.csv", consent_basis=ConsentBasis.UNKNOWN)
    import_analyse(job=job)
    path = Path(job.preview["failed_rows_file"])
    assert path.is_file()
    return job, path


def age(path: Path, days: float) -> None:
    then = time.time() - days * 86400
    os.utime(path, (then, then))


def test_confirmed_import_removes_its_preview_failed_rows(vocabulary):
    job, path = previewed_job()

    import_run(job=job)

    job.refresh_from_db()
    assert not path.exists()
    assert job.preview["failed_rows_file"] == ""
    assert job.failed_rows  # the run's own failed rows are kept for download
    assert job.preview["counts"]["failed"] == job.failed


def test_previews_older_than_the_retention_are_deleted(vocabulary, client, superuser):
    job, path = previewed_job()
    orphan = path.parent / "left-by-a-deleted-job.csv"
    orphan.write_text("phone,row_number,error\n")

    assert import_previews_cleanup_task() == 0  # all fresh: kept
    assert path.exists() and orphan.exists()

    age(path, settings.IMPORTS_PREVIEW_RETENTION_DAYS + 1)
    age(orphan, settings.IMPORTS_PREVIEW_RETENTION_DAYS + 1)
    assert import_previews_cleanup_task() == 2

    assert not path.exists() and not orphan.exists()
    client.force_login(superuser)
    page = client.get(reverse("admin:imports_importjob_job", args=[job.pk])).content.decode()
    assert "no longer kept" in page
    assert client.get(reverse("admin:imports_importjob_failed_rows",
                              args=[job.pk])).status_code == 404


def test_a_preview_file_deleted_behind_the_jobs_back_is_a_404_not_an_error(vocabulary, client,
                                                                           superuser):
    job, path = previewed_job()
    path.unlink()
    client.force_login(superuser)

    response = client.get(reverse("admin:imports_importjob_failed_rows", args=[job.pk]))

    assert response.status_code == 404
