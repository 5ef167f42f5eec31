"""Real browser: upload → preview → confirm → report → download failed rows."""

import pytest
from playwright.sync_api import expect

from crm.models import Contact
from tests.imports.conftest import CORPUS, vocabulary  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("vocabulary")
def test_import_from_upload_to_failed_rows_download(login, live_server, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    page = login()
    page.goto(f"{live_server.url}/admin/imports/importjob/add/")

    page.set_input_files("#id_file", str(CORPUS / "mixed.csv"))
    page.check("input[name=consent_basis][value=opted_in]")
    page.fill("#id_consent_source", "Messe 2026")
    page.click("input[name=_save]")

    counts = page.locator("#tw-preview-counts")
    # The preview is read by a task; the page reloads itself once it is ready.
    expect(counts.locator("[data-reason=invalid_phone]")).to_have_count(1, timeout=20_000)
    assert "invalid_phone" not in counts.inner_text()  # words, not the code
    assert "invalid phone number" in counts.inner_text()
    assert page.locator("#tw-preview-rows tbody tr").count() == 10
    assert Contact.objects.count() == 0

    page.click("#tw-confirm")
    report = page.locator("#tw-report")
    report.wait_for()
    assert report.locator("[data-key=created]").inner_text() == "5"
    assert report.locator("[data-key=failed]").inner_text() == "5"
    assert report.locator("[data-reason=duplicate_in_file]").inner_text() == "1"
    assert "more than 10%" in page.content()
    assert Contact.objects.count() == 5

    with page.expect_download() as download_info:
        page.click("#tw-failed-rows")
    lines = download_info.value.path().read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "phone,tags,first_name,row_number,error"
    assert len(lines) == 6


@pytest.mark.usefixtures("vocabulary")
def test_a_shopify_export_previewed_in_words_and_read_again_with_other_choices(
        login, live_server, settings, tmp_path):
    from tests.imports.test_formats import FORMATS

    settings.MEDIA_ROOT = tmp_path / "media"
    page = login()
    page.goto(f"{live_server.url}/admin/imports/importjob/add/")
    page.set_input_files("#id_file", str(FORMATS / "shopify_customers_export.csv"))
    page.check("input[name=consent_basis][value=unknown]")
    page.click("input[name=_save]")

    mapping = page.locator("#tw-mapping")
    assert "phone number, when “Phone” is empty" in mapping.inner_text()
    assert "unknown tag" in page.locator("#tw-preview-counts").inner_text()
    page.screenshot(path=str(tmp_path / "preview.png"), full_page=True)

    page.check("#tw-options input[name=unknown_tags][value=skip]")
    page.check("#tw-options input[name=consent_for_whatsapp][value='Accepts SMS Marketing']")
    page.click("#tw-preview-again")

    assert "“Newsletter” (1)" in page.locator("#tw-skipped-tags").inner_text()
    assert page.locator("#tw-preview-counts [data-warning=unknown_tag_skipped]").inner_text() == "1"
    page.click("#tw-confirm")
    page.locator("#tw-report").wait_for()
    assert Contact.objects.get(phone="+85291234567").consent_status == "opted_in"
    assert Contact.objects.count() == 4
