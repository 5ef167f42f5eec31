"""The admin flow without a browser: upload → preview → confirm → report → failed rows → undo."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from crm.models import Contact
from tagging.imports.models import ImportJob, ImportStatus
from tests.factories import ContactFactory
from tests.imports.conftest import CORPUS

pytestmark = pytest.mark.django_db


def upload(client, name: str, content: bytes, **fields):
    data = {"file": SimpleUploadedFile(name, content), "consent_basis": "opted_in",
            "consent_source": "Shop", "region": "de", "update_mode": "fill_empty",
            "unknown_tags": "fail", **fields}
    return client.post(reverse("admin:imports_importjob_add"), data)


def test_upload_preview_confirm_report_and_undo(client, superuser, vocabulary,
                                               django_capture_on_commit_callbacks):
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "mixed.csv", (CORPUS / "mixed.csv").read_bytes())
    job = ImportJob.objects.get()
    assert response.status_code == 302

    page = client.get(response["Location"]).content.decode()
    assert job.__class__.objects.get().status == ImportStatus.READY
    assert "Preview" in page and "invalid_phone" in page and "Import now" in page
    assert Contact.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:imports_importjob_confirm", args=[job.pk]))
    job.refresh_from_db()
    assert (job.status, job.created, job.failed) == (ImportStatus.DONE, 5, 5)
    status = client.get(reverse("admin:imports_importjob_status", args=[job.pk])).json()
    assert status["created"] == 5 and status["active"] is False

    page = client.get(reverse("admin:imports_importjob_job", args=[job.pk])).content.decode()
    assert "Report" in page and "Download failed rows" in page
    download = client.get(reverse("admin:imports_importjob_failed_rows", args=[job.pk]))
    body = b"".join(download.streaming_content).decode("utf-8-sig")
    assert body.splitlines()[0] == "phone,tags,first_name,row_number,error"

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:imports_importjob_undo", args=[job.pk]))
    assert Contact.objects.count() == 0
    assert ImportJob.objects.get().status == ImportStatus.UNDONE


def test_form_requires_consent_source_for_opted_in(client, superuser, vocabulary):
    client.force_login(superuser)

    response = upload(client, "a.csv", b"phone\n+4915123000001\n", consent_source="")

    assert response.status_code == 200
    assert "Say where these people opted in" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_garbage_upload_shows_a_refusal_not_an_error_page(client, superuser, vocabulary,
                                                          django_capture_on_commit_callbacks):
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "x.csv", (CORPUS / "garbage.bin").read_bytes())

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "binary file" in page.content.decode()


def test_export_actions_on_the_contact_list(client, superuser, vocabulary):
    ContactFactory(phone="+4915123000001", first_name="=1+2")
    client.force_login(superuser)
    url = reverse("admin:crm_contact_changelist")

    response = client.post(url, {"action": "export_contacts_csv",
                                 "_selected_action": list(Contact.objects.values_list("pk",
                                                                                      flat=True))})

    body = b"".join(response.streaming_content).decode("utf-8")
    assert "+4915123000001,'=1+2" in body
    response = client.post(url, {"action": "export_contacts_xlsx", "_selected_action":
                                 list(Contact.objects.values_list("pk", flat=True))})
    assert response["Content-Disposition"].endswith('.xlsx"')
