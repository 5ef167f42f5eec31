from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from crm.models import ConsentStatus, Contact
from tagging.imports.models import ConsentBasis, ImportJob, ImportStatus, UpdateMode
from tagging.imports.services import (
    ImportRefused,
    import_analyse,
    import_create,
    import_run,
    import_undo,
)
from tagging.models import Tag, TagAssignment, TagVersion
from tagging.services import tags_change
from tests.factories import ContactFactory, UserFactory
from tests.imports.conftest import CORPUS, history_counts

pytestmark = pytest.mark.django_db


def tags_of(phone: str) -> set[str]:
    return set(Tag.objects.filter(assignments__contact__phone=phone)
               .values_list("name", flat=True))


def test_rerunning_the_same_file_changes_nothing_and_says_so(vocabulary, marketer, run_import):
    first = run_import(CORPUS / "mixed.csv", actor=marketer)
    assignments = TagAssignment.objects.count()

    second = run_import(CORPUS / "mixed.csv", actor=marketer)

    assert (second.created, second.updated, second.tags_added) == (0, 0, 0)
    assert second.unchanged == first.created == 4
    assert second.failed == first.failed
    assert TagAssignment.objects.count() == assignments
    assert "Nothing changed" in second.message
    assert f"import #{first.pk}" in second.message


def test_existing_contacts_fill_empty_or_overwrite(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", first_name="", last_name="Alt", city="Bonn")
    content = "phone,first_name,last_name,city\n+4915123000001,Anna,Neu,Bonn\n"

    job = run_import(content)
    contact = Contact.objects.get()
    assert (job.updated, contact.first_name, contact.last_name) == (1, "Anna", "Alt")

    job = run_import(content, update_mode=UpdateMode.OVERWRITE)
    contact.refresh_from_db()
    assert (job.updated, contact.last_name) == (1, "Neu")


def test_single_choice_tag_replaces_and_remove_tags_removes(vocabulary, run_import):
    contact = ContactFactory(phone="+4915123000001")
    tags_change(contacts=[contact], add=[vocabulary["Bestellt"], vocabulary["VIP"]])

    job = run_import("phone,tags,remove_tags\n+4915123000001,Kaufphase-Abgeschlossen,VIP\n")

    assert tags_of(contact.phone) == {"Kaufphase-Abgeschlossen"}
    assert (job.updated, job.tags_added, job.tags_removed) == (1, 1, 2)
    assert history_counts(job) == {"added": 1, "removed": 2}


def test_unknown_tags_are_created_by_a_tag_administrator_when_asked(vocabulary, run_import):
    admin = UserFactory(is_superuser=True, is_staff=True)
    dimension = vocabulary["dimensions"]["Interesse"]

    job = run_import("phone,tags\n+4915123000001,Neu-Tag\n+4915123000002,Neu-Tag\n",
                     actor=admin, unknown_tags="create", missing_tags_dimension=dimension)

    tag = Tag.objects.get(name="Neu-Tag")
    assert tag.dimension == dimension and tag.assignments.count() == 2
    assert job.failed == 0
    assert TagVersion.objects.filter(object_name="Neu-Tag", action="created").count() == 1
    assert "Neu-Tag" in job.message


def test_create_missing_tags_is_refused_for_a_marketer(vocabulary, marketer, tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("phone,tags\n+4915123000001,Neu\n")

    with pytest.raises(ImportRefused, match="Only a tag administrator"):
        import_create(path=path, actor=marketer, consent_basis=ConsentBasis.UNKNOWN,
                      unknown_tags="create",
                      missing_tags_dimension=vocabulary["dimensions"]["Interesse"])
    assert not Tag.objects.filter(name="Neu").exists()


def test_consent_recorded_on_new_contacts_and_never_switched_back(vocabulary, run_import):
    ContactFactory(phone="+4915123000001", consent_status=ConsentStatus.OPTED_OUT)
    ContactFactory(phone="+4915123000002", consent_status=ConsentStatus.UNKNOWN, is_blocked=True)
    ContactFactory(phone="+4915123000003", consent_status=ConsentStatus.UNKNOWN)
    rows = "phone\n+4915123000001\n+4915123000002\n+4915123000003\n+4915123000004\n"

    run_import(rows, consent_basis=ConsentBasis.OPTED_IN, consent_source="Messe 2026")

    status = dict(Contact.objects.values_list("phone", "consent_status"))
    assert status == {"+4915123000001": "opted_out", "+4915123000002": "unknown",
                      "+4915123000003": "opted_in", "+4915123000004": "opted_in"}
    assert Contact.objects.get(phone="+4915123000004").consent_source == "Messe 2026"


def test_unknown_consent_basis_creates_contacts_without_consent(vocabulary, run_import):
    run_import("phone\n+4915123000004\n", consent_basis=ConsentBasis.UNKNOWN, consent_source="")

    assert Contact.objects.get().consent_status == ConsentStatus.UNKNOWN


def test_undo_takes_the_import_back_once(vocabulary, run_import):
    kept = ContactFactory(phone="+4915123000001")
    tags_change(contacts=[kept], add=[vocabulary["VIP"]])
    job = run_import("phone,tags,remove_tags\n+4915123000001,Interesse-Sport,VIP\n"
                     "+4915123000002,VIP\n+4915123000003,VIP\n")
    touched = Contact.objects.get(phone="+4915123000003")
    tags_change(contacts=[touched], add=[vocabulary["Interesse-Essen"]])  # touched since

    report = import_undo(job=job)

    assert report == {"tags_removed": 3, "tags_restored": 1, "contacts_deleted": 1,
                      "contacts_kept": 1, "contacts_restored": 0, "contacts_changed_since": 0}
    assert not Contact.objects.filter(phone="+4915123000002").exists()
    assert tags_of("+4915123000001") == {"VIP"}
    assert tags_of("+4915123000003") == {"Interesse-Essen"}
    assert import_undo(job=job)["already_undone"] is True
    assert tags_of("+4915123000001") == {"VIP"}
    assert ImportJob.objects.get(pk=job.pk).status == ImportStatus.UNDONE


def test_dry_run_preview_counts_what_the_import_then_does(vocabulary, marketer, tmp_path):
    ContactFactory(phone="+4915123000002")
    job = import_create(path=CORPUS / "mixed.csv", actor=marketer,
                        consent_basis=ConsentBasis.UNKNOWN)

    import_analyse(job=job)

    assert Contact.objects.count() == 1
    preview = job.preview
    assert preview["counts"]["created"] == 3 and preview["counts"]["updated"] == 1
    assert preview["counts"]["errors"]["invalid_phone"] == 2
    assert {"header": "tags", "target": "tags"} in preview["mapping"]
    assert preview["rows"][0]["outcome"] == "+4915123000001 +VIP"
    assert job.status == ImportStatus.READY

    from tagging.imports.services import import_run

    outcome = import_run(job=job)
    assert outcome.as_dict() == preview["counts"]


def test_command_prints_json_and_writes_errors(vocabulary, tmp_path, capsys):
    errors = tmp_path / "errors.csv"

    call_command("import_contacts", str(CORPUS / "mixed.csv"), "--region", "DE",
                 "--consent-source", "Shop", "--errors", str(errors), "--json")

    report = json.loads(capsys.readouterr().out)
    # The command runs as the system: the Intern tag is allowed there.
    assert {k: report[k] for k in ("rows", "created", "updated", "unchanged", "failed")} == {
        "rows": 10, "created": 5, "updated": 0, "unchanged": 0, "failed": 5}
    assert report["errors"] == {"invalid_phone": 2, "duplicate_in_file": 1, "unknown_tag": 1,
                                "conflicting_tags": 1}
    assert len(errors.read_text(encoding="utf-8-sig").splitlines()) == 6


def test_command_dry_run_writes_nothing(vocabulary, capsys):
    call_command("import_contacts", str(CORPUS / "mixed.csv"), "--dry-run")

    assert "5 contacts would be created" in capsys.readouterr().out
    assert Contact.objects.count() == 0


def test_command_refuses_a_file_without_phone_column(vocabulary):
    with pytest.raises(CommandError, match="no phone column"):
        call_command("import_contacts", str(CORPUS / "no_phone.csv"))


def test_a_crash_marks_the_job_failed_with_what_was_committed(vocabulary, tmp_path,
                                                              monkeypatch):
    from tagging.imports import services
    from tagging.imports.services import import_run

    path = tmp_path / "f.csv"
    path.write_text("phone\n" + "".join(f"+49151230{i:05d}\n" for i in range(30)))
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN)
    monkeypatch.setattr(services, "BATCH_SIZE", 10)
    calls = {"n": 0}
    original = services._Engine._apply

    def flaky(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("database went away")
        return original(self, batch)

    monkeypatch.setattr(services._Engine, "_apply", flaky)

    with pytest.raises(RuntimeError):
        import_run(job=job)

    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert "after 20 rows" in job.message
    assert job.created == Contact.objects.count() == 20


def test_batches_read_ahead_while_tags_are_written_and_count_exactly(vocabulary, tmp_path,
                                                                     monkeypatch):
    """Each batch's next rows are parsed while its tags are written: all rows, all tags."""
    from tagging.imports import services

    monkeypatch.setattr(services, "BATCH_SIZE", 3)
    path = tmp_path / "f.csv"
    path.write_text("phone,tags\n" + "".join(
        f"+49151230{i:05d},\"VIP, {'Bestellt' if i % 2 else 'Kaufphase-Abgeschlossen'}\"\n"
        for i in range(10)))
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN)
    import_run(job=job)

    job.refresh_from_db()
    assert (job.rows, job.created, job.tags_added, job.failed) == (10, 10, 20, 0)
    assert TagAssignment.objects.count() == 20
    assert TagAssignment.objects.filter(tag=vocabulary["Bestellt"]).count() == 5


def test_an_error_while_reading_ahead_keeps_the_batch_before(vocabulary, tmp_path,
                                                             monkeypatch):
    """A row that breaks the parser while the batch before is being written: that batch
    is committed and counted, the job fails saying so."""
    from tagging.imports import services
    from tagging.imports.rules import RowParser

    monkeypatch.setattr(services, "BATCH_SIZE", 3)
    path = tmp_path / "f.csv"
    path.write_text("phone,tags\n" + "".join(f"+49151230{i:05d},VIP\n" for i in range(9)))
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN)
    original = RowParser.parse

    def breaks_on_row_6(self, raw):
        if raw.number == 6:
            raise RuntimeError("parser bug")
        return original(self, raw)

    monkeypatch.setattr(RowParser, "parse", breaks_on_row_6)
    with pytest.raises(RuntimeError, match="parser bug"):
        import_run(job=job)

    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert "after 3 rows" in job.message
    assert (job.created, job.tags_added) == (3, 3)
    assert Contact.objects.count() == TagAssignment.objects.count() == 3


def test_other_columns_go_into_attributes_when_asked(vocabulary, run_import):
    job = run_import("phone,Lieblingsfarbe,Kundennummer\n+4915123000001,blau,K-17\n",
                     extra_columns_to_attributes=True)

    assert job.created == 1
    assert Contact.objects.get().attributes == {"Lieblingsfarbe": "blau", "Kundennummer": "K-17"}


def test_invalid_values_fail_their_row_naming_the_column(vocabulary, run_import):
    job = run_import("phone,gender,birth_date\n+4915123000001,x,\n+4915123000002,f,31.02.1990\n"
                     "+4915123000003,weiblich,24.12.1990\n")

    assert job.errors == {"invalid_value": 2}
    lines = job.failed_rows.open("rb").read().decode("utf-8-sig")
    assert "invalid_value: gender: “x” is not a gender" in lines
    assert "invalid_value: birth_date: “31.02.1990” is not a date" in lines
    assert str(Contact.objects.get().birth_date) == "1990-12-24"


def test_a_redelivered_task_changes_nothing(vocabulary, run_import):
    from tagging.imports.services import import_run

    job = run_import("phone,tags\n+4915123000001,VIP\n")

    outcome = import_run(job=job)

    assert (outcome.created, outcome.tags_added) == (1, 1)
    assert Contact.objects.count() == 1 and TagAssignment.objects.count() == 1


class _Died(Exception):
    """Stands for SIGKILL: the test resets the job as a killed worker leaves it."""


def test_a_job_left_running_by_a_dead_worker_resumes_after_its_last_batch(
        vocabulary, tmp_path, monkeypatch):
    from tagging.imports import services

    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    path = tmp_path / "f.csv"
    # The duplicate (row 5 repeats row 1) comes after the cursor: the resumed run must
    # still know the first occurrence.
    path.write_text("phone,tags\n+4915123000001,VIP\n+4915123000002,VIP\n"
                    "not a number,VIP\n+4915123000003,VIP\n+4915123000001,VIP\n"
                    "+4915123000004,VIP\n+4915123000005,VIP\n")
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.QUEUED)
    flush, calls = services._Engine._flush, []

    def dies_at_the_third_batch(engine, *args):
        calls.append(1)
        if len(calls) == 3:
            raise _Died
        return flush(engine, *args)

    monkeypatch.setattr(services._Engine, "_flush", dies_at_the_third_batch)
    with pytest.raises(_Died):
        import_run(job=job)
    # SIGKILL runs no except clause: the job stays "running" with two batches committed.
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, message="",
                                                finished_at=None)
    assert ImportJob.objects.get(pk=job.pk).rows == 4 and Contact.objects.count() == 3

    monkeypatch.setattr(services._Engine, "_flush", flush)
    outcome = import_run(job=job)

    job.refresh_from_db()
    assert job.status == ImportStatus.DONE
    # The whole file is counted once, as an uninterrupted run counts it.
    assert (job.rows, job.created, job.failed, job.tags_added) == (7, 5, 2, 5)
    assert (outcome.rows, outcome.created, outcome.failed) == (7, 5, 2)
    assert Contact.objects.count() == 5 and TagAssignment.objects.count() == 5
    assert set(job.errors) == {"invalid_phone", "duplicate_in_file"}
    failed_rows = job.failed_rows.open("rb").read().decode("utf-8-sig").splitlines()
    assert len(failed_rows) == 3  # the header and both failures, written once each


