"""The importer's choice for unknown tags (issue #15): fail the row (default), skip the
tags with a warning, or — tag administrators only — create them."""

from __future__ import annotations

import pytest

from crm.models import Contact
from tagging.imports.models import ConsentBasis, UnknownTags
from tagging.imports.services import ImportRefused, import_analyse, import_create
from tagging.models import Tag
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FILE = "phone,tags\n+4915123000001,\"VIP, Wholesale\"\n+4915123000002,VIP\n"


def tags_of(phone: str) -> set[str]:
    return set(Contact.objects.get(phone=phone).tags.values_list("name", flat=True))


def test_by_default_an_unknown_tag_fails_its_row(vocabulary, run_import):
    job = run_import(FILE)

    assert (job.created, job.errors) == (1, {"unknown_tag": 1})
    assert "does not exist" in job.failed_rows.open("rb").read().decode("utf-8-sig")


def test_skip_imports_the_row_without_the_unknown_tags_and_says_so(vocabulary, run_import):
    job = run_import(FILE, unknown_tags=UnknownTags.SKIP)

    assert (job.created, job.failed) == (2, 0)
    assert tags_of("+4915123000001") == {"VIP"}
    assert not Tag.objects.filter(name="Wholesale").exists()
    assert job.report["skipped_tags"] == {"Wholesale": 1}
    assert job.report["warning_rows"] == [
        [2, "The tag “Wholesale” does not exist and was skipped."]]
    assert "1 row was imported without its unknown tags: “Wholesale” (1)" in job.message


def test_the_preview_shows_the_skipped_tags_on_the_row(vocabulary, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(FILE)
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN,
                        unknown_tags=UnknownTags.SKIP)

    import_analyse(job=job)

    first = job.preview["rows"][0]
    assert first["ok"] and "“Wholesale” does not exist and was skipped" in first["outcome"]
    assert job.preview["counts"]["warnings"] == {"unknown_tag_skipped": 1}
    assert Contact.objects.count() == 0


def test_create_makes_the_tags_for_a_tag_administrator(vocabulary, run_import):
    admin = UserFactory(is_superuser=True, is_staff=True)

    job = run_import(FILE, actor=admin, unknown_tags=UnknownTags.CREATE,
                     missing_tags_dimension=vocabulary["dimensions"]["Interesse"])

    assert (job.created, job.failed) == (2, 0)
    assert tags_of("+4915123000001") == {"VIP", "Wholesale"}


def test_create_is_refused_for_a_marketer_before_anything_is_read(vocabulary, marketer,
                                                                  tmp_path):
    path = tmp_path / "f.csv"
    path.write_text(FILE)

    with pytest.raises(ImportRefused, match="Only a tag administrator"):
        import_create(path=path, actor=marketer, consent_basis=ConsentBasis.UNKNOWN,
                      unknown_tags=UnknownTags.CREATE,
                      missing_tags_dimension=vocabulary["dimensions"]["Interesse"])


def test_skip_still_fails_tags_the_importer_may_not_apply(vocabulary, marketer, run_import):
    job = run_import("phone,tags\n+4915123000001,\"Sperre, Wholesale\"\n", actor=marketer,
                     unknown_tags=UnknownTags.SKIP)

    assert job.errors == {"forbidden_tag": 1}
