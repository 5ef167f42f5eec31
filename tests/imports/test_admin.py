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
    assert "Preview" in page and "invalid phone number" in page and "Import now" in page
    assert "invalid_phone" not in page.replace('data-reason="invalid_phone"', "")
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


def test_the_preview_names_every_column_of_a_shopify_export_in_words(
        client, superuser, vocabulary, django_capture_on_commit_callbacks):
    from tests.imports.test_formats import FORMATS

    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "customers_export.csv",
                          (FORMATS / "shopify_customers_export.csv").read_bytes())
    page = client.get(response["Location"]).content.decode()

    for words in ("phone number, when “Phone” is empty",  # Default Address Phone
                  "country of the row&#x27;s phone number", "number of orders",
                  "e-mail (kept in the contact&#x27;s attributes)",
                  "SMS consent: a no keeps the row from being opted in",
                  "not imported: not recognised", "Read as UTF-8."):
        assert words in page, words
    assert "unknown tag" in page and 'id="tw-options"' in page


def test_preview_choices_run_the_preview_again(client, superuser, vocabulary,
                                               django_capture_on_commit_callbacks):
    from tests.imports.test_formats import FORMATS

    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "customers_export.csv",
                          (FORMATS / "shopify_customers_export.csv").read_bytes(),
                          consent_basis="unknown", consent_source="")
    job = ImportJob.objects.get()
    assert job.preview["counts"]["errors"] == {"unknown_tag": 1}

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:imports_importjob_options", args=[job.pk]),
                    {"unknown_tags": "skip", "consent_for_whatsapp": ["Accepts SMS Marketing"]})

    job.refresh_from_db()
    assert (job.status, job.unknown_tags) == (ImportStatus.READY, "skip")
    assert job.consent_for_whatsapp == ["Accepts SMS Marketing"]
    assert job.preview["counts"]["failed"] == 0
    assert job.preview["skipped_tags"] == {"Newsletter": 1}
    page = client.get(response["Location"]).content.decode()
    assert "“Newsletter” (1)" in page
    assert "opted in (“Accepts SMS Marketing”)" in page  # the first row's outcome
    assert Contact.objects.count() == 0


def test_create_missing_tags_from_the_preview_needs_a_tag_administrator(
        client, vocabulary, marketer, django_capture_on_commit_callbacks):
    from django.contrib.auth.models import Permission

    marketer.user_permissions.add(*Permission.objects.filter(
        codename__in=["add_importjob", "view_importjob"]))
    client.force_login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, "a.csv", b"phone,tags\n+4915123000001,Neu\n")
    job = ImportJob.objects.get()

    client.post(reverse("admin:imports_importjob_options", args=[job.pk]),
                {"unknown_tags": "create",
                 "missing_tags_dimension": vocabulary["dimensions"]["Interesse"].pk})

    job.refresh_from_db()
    assert (job.status, job.unknown_tags) == (ImportStatus.READY, "fail")
