"""Contact imports: dry run, run, report, undo.

One engine serves the preview (``dry_run=True``: reads the whole file and
counts what would happen, writes nothing) and the import itself. The file is
streamed and handled in batches; each batch is one transaction that writes
contacts through ``crm.services`` (one statement per batch: ``contacts_insert``,
``contacts_update``), changes tags through ``tagging.services.tags_change_pairs``
(one call per batch, never per row), records what undo needs and updates the job's
counters, so the counters always equal what the database holds, even after a crash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from crm.csvsafe import SafeWriter
from crm.jobs import Claim, JobLost
from crm.metrics import job_timed
from crm.models import ConsentStatus, Contact
from crm.privacy import Subject, numbers_erased
from crm.selectors import phone_in
from crm.services import (
    CONSENT_FIELDS,
    consent_change_allowed,
    contacts_delete,
    contacts_insert,
    contacts_join_earlier,
    contacts_update,
)
from tagging.imports.models import (
    ImportedChange,
    ImportedContact,
    ImportJob,
    ImportStatus,
    UnknownTags,
    UpdateMode,
)
from tagging.imports.reader import (
    Batches,
    RawRow,
    UnreadableFile,
    detect_encoding,
    guess_encoding,
    open_table,
)
from tagging.imports.rules import (
    FACT_FIELDS,
    LABELS,
    NO,
    OPT_OUT,
    YES,
    Notice,
    ParsedRow,
    Reason,
    RowFailure,
    RowParser,
    TagBook,
    map_columns,
)
from tagging.models import AssignmentHistory, Source, Tag, TagAssignment
from tagging.permissions import can_define, ensure_can_undo, undo_refusal
from tagging.selectors import operation_tags
from tagging.services import operation_undo, tags_change_pairs

BATCH_SIZE = 10_000  # rows per committed batch: the resume cursor moves by this much
# Kinds of long job (crm.jobs), registered in ImportsConfig.ready().
IMPORT_JOB, IMPORT_UNDO_JOB = "import", "import_undo"
PREVIEW_ROWS = 10
FAILURE_WARNING_SHARE = 0.10
WARNING_ROWS = 100  # rows with a warning listed by number in the report
EMPTY = ("", None, 0)  # a fact an import with "fill empty fields" may fill

# What a batch changes on existing contacts: field names -> [(id, new values, values before)].
Updates = dict[tuple[str, ...], list[tuple[int, dict, dict]]]


class ImportRefused(ValueError):
    """The file or the options cannot be imported at all; nothing was written."""


@dataclass
class Outcome:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    tags_added: int = 0
    tags_removed: int = 0
    errors: Counter = field(default_factory=Counter)
    tags_created: list[str] = field(default_factory=list)
    # Rows imported with something left out: code -> rows; skipped tag -> rows; the first
    # rows with a warning as (row number, message).
    warnings: Counter = field(default_factory=Counter)
    skipped_tags: Counter = field(default_factory=Counter)
    warning_rows: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"rows": self.rows, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "failed": self.failed,
                "tags_added": self.tags_added, "tags_removed": self.tags_removed,
                "errors": dict(sorted(self.errors.items())),
                "warnings": dict(sorted(self.warnings.items()))}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_create(*, path: str | Path, actor=None, name: str = "", **options) -> ImportJob:
    """Create a job for a file already on disk (the command's way in); the admin form
    creates the job itself from the upload."""
    job = ImportJob(actor=actor, original_name=name or Path(path).name, **options)
    with open(path, "rb") as fh:
        job.file.save(Path(path).name, File(fh), save=False)
    job.file_sha256 = file_sha256(job.file.path)
    import_check_options(job=job)
    job.save()
    return job


def import_check_options(*, job: ImportJob) -> None:
    """Refuse options the importer may not use (before anything is read or written)."""
    if job.create_missing_tags:
        if job.missing_tags_dimension is None:
            raise ImportRefused(_("Choose the dimension in which missing tags are created."))
        if job.missing_tags_dimension.is_archived:
            raise ImportRefused(_(
                "The dimension “%(dim)s” is archived; no tags can be created in it. Choose "
                "another or ask a tag administrator to restore it.")
                % {"dim": job.missing_tags_dimension})
        if not can_define(job.actor, job.missing_tags_dimension):
            raise ImportRefused(_(
                "Only a tag administrator of “%(dim)s” may create missing tags; choose to "
                "fail or skip rows with unknown tags, or ask one.")
                % {"dim": job.missing_tags_dimension})


def import_analyse(*, job: ImportJob) -> Outcome:
    """The preview: first rows as parsed, column mapping and a full dry run's counts.

    Writes nothing but the job's ``preview``; a refused file sets status ``refused``.
    """
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.ANALYSING)
    _discard_preview_file(job)  # a re-delivered analysis writes a new one
    try:
        with job_timed("import_analyse", refused=(ImportRefused, UnreadableFile)):
            engine = _Engine(job, dry_run=True)
            outcome = engine.execute()
    except (ImportRefused, UnreadableFile) as exc:
        _refuse(job, str(exc))
        raise ImportRefused(str(exc)) from None
    except BaseException:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, finished_at=timezone.now(),
            message=_("The preview stopped because of an internal error; nothing was "
                      "imported. Try again, or send the file to your administrator."))
        raise
    job.preview = {
        "mapping": engine.mapping.as_list(), "rows": engine.sample,
        "encoding": engine.encoding, "delimiter": engine.delimiter,
        "counts": outcome.as_dict(), "tags_created": outcome.tags_created,
        "skipped_tags": dict(outcome.skipped_tags.most_common(50)),
        "warning_rows": outcome.warning_rows[:PREVIEW_ROWS],
        "failure_warning": _share(outcome) > FAILURE_WARNING_SHARE,
        "previously_imported": _previous(job),
        "failed_rows_file": str(engine.failures.path) if outcome.failed else "",
    }
    job.status = ImportStatus.READY
    job.save(update_fields=["preview", "status"])
    return outcome


def import_run(*, job: ImportJob, progress: Callable[[ImportJob], None] | None = None,
               claim: Claim | None = None) -> Outcome:
    """Import the file for real and write the report.

    A job that is already done (a re-delivered task) is returned as it is. A job left
    running by a worker that died continues after the last committed batch (the
    ``rows`` counter is the cursor), and the report counts the whole file. ``claim``
    (``crm.jobs``) is renewed with every batch. Re-running the same file as a new job
    changes nothing and the report says so.
    """
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.status in (ImportStatus.DONE, ImportStatus.UNDONE, ImportStatus.REFUSED,
                          ImportStatus.FAILED):
            return _outcome_of(job)
        resume_after = job.rows if job.status == ImportStatus.RUNNING else 0
        if not resume_after:
            job.status, job.started_at = ImportStatus.RUNNING, timezone.now()
            job.save(update_fields=["status", "started_at"])
            # The run writes its own failed rows; the preview's are not shown any more.
            _discard_preview_file(job)
    engine = _Engine(job, dry_run=False, progress=progress, claim=claim,
                     resume_after=resume_after)
    try:
        with job_timed("import_run", refused=(ImportRefused, UnreadableFile)):
            outcome = engine.execute()
    except (ImportRefused, UnreadableFile) as exc:
        _refuse(job, str(exc))
        raise ImportRefused(str(exc)) from None
    except JobLost:
        raise  # another worker continues it
    except BaseException:
        # Never leave a job "running" forever: say what is in the database, then fail loudly.
        rows = ImportJob.objects.filter(pk=job.pk).values_list("rows", flat=True).first()
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED, finished_at=timezone.now(),
            message=_("The import stopped because of an internal error after %(n)d rows. "
                      "Everything counted below is in the database: undo it, or upload the "
                      "file again to import the rest.") % {"n": rows or 0})
        raise
    job.refresh_from_db()
    job.status, job.finished_at, job.progress = ImportStatus.DONE, timezone.now(), 1.0
    job.report = _report(job, outcome)
    job.message = " ".join(job.report["notes"])
    job.save()
    return outcome


def import_give_up(job_id: int, attempts: int) -> None:
    """The job's worker died ``attempts`` times (``crm.jobs``): fail it with a sentence."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
            return
        job.status, job.finished_at = ImportStatus.FAILED, timezone.now()
        job.message = _("The worker importing this file stopped %(attempts)d times, after "
                        "%(n)d rows; the import was not tried again. Everything counted below "
                        "is in the database: undo it, or upload the file again to import the "
                        "rest (rows already imported will show as unchanged).") % {
                            "attempts": attempts, "n": job.rows}
        job.save(update_fields=["status", "finished_at", "message"])


def import_undo_give_up(job_id: int, attempts: int) -> None:
    """The undo's worker died ``attempts`` times: say so (the undo is one transaction, so
    nothing of it was applied)."""
    ImportJob.objects.filter(pk=job_id, undone_at__isnull=True).update(message=_(
        "Undoing this import stopped %(attempts)d times because its worker died; nothing was "
        "undone. Try again, or ask your administrator to look at the workers.") % {
            "attempts": attempts})


def import_undo(*, job: ImportJob, actor=None) -> dict:
    """Take the import back: remove the tags it added, restore those it removed, delete
    the contacts it created unless something else touched them since, and put back the
    fields it overwrote on existing contacts unless they changed since (``_restore_changes``).

    Only the person who ran the import, or a tag administrator, may undo it (``can_undo``),
    and only while they may apply every tag it changed; refused, nothing changes.
    Idempotent: a second undo changes nothing and returns the first undo's report.
    """
    ensure_can_undo(actor, job.actor_id, undo_refusal("import"), operation_tags(job.operation))
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.undone_at:
            return {**job.undo_report, "already_undone": True}
        if job.status not in (ImportStatus.DONE, ImportStatus.FAILED):
            raise ImportRefused(_("Only a finished import can be undone."))
        result = operation_undo(operation=job.operation, actor=actor,
                                source_ref=f"undo:{job.source_ref}")
        history = AssignmentHistory.objects.filter(contact_id=OuterRef("contact_id")).exclude(
            operation__in=[job.operation, result.operation])
        candidates = (
            job.created_contacts.annotate(touched=Exists(history))
            .filter(touched=False, contact__updated_at__lte=job.finished_at or timezone.now())
            .values_list("contact_id", flat=True)
        )
        ids = list(candidates)
        deleted = 0
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start:start + BATCH_SIZE]
            deleted += contacts_delete(ids=chunk)
        kept = job.created_contacts.count() - deleted
        restored, changed_since = _restore_changes(job, timezone.now())
        job.undo_report = {"tags_removed": result.removed, "tags_restored": result.added,
                           "contacts_deleted": deleted, "contacts_kept": kept,
                           "contacts_restored": restored,
                           "contacts_changed_since": changed_since}
        job.undone_at, job.status = timezone.now(), ImportStatus.UNDONE
        job.save(update_fields=["undo_report", "undone_at", "status"])
    return job.undo_report


def import_previews_cleanup(*, older_than: timedelta | None = None) -> int:
    """Delete failed-rows files of previews older than ``older_than`` (default
    ``IMPORTS_PREVIEW_RETENTION_DAYS``), including those of deleted jobs; return how many.

    Jobs that pointed to a deleted file no longer offer its download. Safe to re-run.
    """
    if older_than is None:
        older_than = timedelta(days=settings.IMPORTS_PREVIEW_RETENTION_DAYS)
    directory = Path(settings.MEDIA_ROOT) / "imports" / "preview"
    if not directory.is_dir():
        return 0
    cutoff = (timezone.now() - older_than).timestamp()
    old = [path for path in directory.iterdir()
           if path.is_file() and path.stat().st_mtime < cutoff]
    for path in old:
        path.unlink(missing_ok=True)
    names = [str(path) for path in old]
    for start in range(0, len(names), 500):
        for job in ImportJob.objects.filter(
                preview__failed_rows_file__in=names[start:start + 500]).only("preview"):
            job.preview["failed_rows_file"] = ""
            job.save(update_fields=["preview"])
    return len(old)


def _discard_preview_file(job: ImportJob) -> None:
    name = (job.preview or {}).get("failed_rows_file")
    if not name:
        return
    Path(name).unlink(missing_ok=True)
    job.preview["failed_rows_file"] = ""
    ImportJob.objects.filter(pk=job.pk).update(preview=job.preview)


def _refuse(job: ImportJob, message: str) -> None:
    job.status, job.message, job.finished_at = ImportStatus.REFUSED, message, timezone.now()
    job.save(update_fields=["status", "message", "finished_at"])


def _share(outcome: Outcome) -> float:
    return outcome.failed / outcome.rows if outcome.rows else 0.0


def _previous(job: ImportJob) -> int | None:
    if not job.file_sha256:
        return None
    return (ImportJob.objects.filter(file_sha256=job.file_sha256, status=ImportStatus.DONE)
            .exclude(pk=job.pk).order_by("-created_at").values_list("pk", flat=True).first())


def _outcome_of(job: ImportJob) -> Outcome:
    return Outcome(job.rows, job.created, job.updated, job.unchanged, job.failed,
                   job.tags_added, job.tags_removed, Counter(job.errors))


def _report(job: ImportJob, outcome: Outcome) -> dict:
    notes = []
    if not (job.created or job.updated or job.tags_added or job.tags_removed):
        notes.append(_("Nothing changed: every contact and tag in this file was already in "
                       "Tagwerk."))
    if _share(outcome) > FAILURE_WARNING_SHARE:
        notes.append(_("%(share).0f%% of the rows failed (more than 10%%): fix the file using "
                       "the failed rows download and upload it again.")
                     % {"share": 100 * _share(outcome)})
    previous = _previous(job)
    if previous:
        notes.append(_("The same file was imported before as import #%(id)d.") % {"id": previous})
    if outcome.tags_created:
        notes.append(ngettext("%(n)d missing tag was created: %(tags)s.",
                              "%(n)d missing tags were created: %(tags)s.",
                              len(outcome.tags_created))
                     % {"n": len(outcome.tags_created), "tags": ", ".join(outcome.tags_created)})
    notes += _warning_notes(outcome)
    return {**outcome.as_dict(), "notes": notes, "tags_created": outcome.tags_created,
            "skipped_tags": dict(outcome.skipped_tags.most_common(50)),
            "warning_rows": outcome.warning_rows,
            "failure_warning": _share(outcome) > FAILURE_WARNING_SHARE}


def _warning_notes(outcome: Outcome) -> list[str]:
    notes = []
    skipped = outcome.warnings.get(Notice.UNKNOWN_TAG_SKIPPED)
    if skipped:
        tags = ", ".join(f"“{name}” ({n})" for name, n in outcome.skipped_tags.most_common(10))
        notes.append(ngettext(
            "%(n)d row was imported without its unknown tags: %(tags)s. Create those tags "
            "and import the file again to add them.",
            "%(n)d rows were imported without their unknown tags: %(tags)s. Create those "
            "tags and import the file again to add them.", skipped) % {"n": skipped,
                                                                         "tags": tags})
    unclear = outcome.warnings.get(Notice.CONSENT_UNCLEAR)
    if unclear:
        notes.append(ngettext(
            "%(n)d row has a consent value that is neither yes nor no; it was not opted in.",
            "%(n)d rows have a consent value that is neither yes nor no; they were not opted "
            "in.", unclear) % {"n": unclear})
    return notes


class _FailedRows:
    """The downloadable CSV of failed rows: the original columns, row_number, error."""

    def __init__(self, headers: list[str], path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fh = path.open("w", newline="", encoding="utf-8-sig")
        self.writer = SafeWriter(self.fh)
        self.width = len(headers)
        self.writer.writerow([*headers, "row_number", "error"])

    def write(self, failure: RowFailure) -> None:
        cells = (failure.cells + [""] * self.width)[: self.width]
        self.writer.writerow([*cells, failure.number, f"{failure.reason}: {failure.message}"])

    def close(self) -> None:
        self.fh.close()


class _Engine:
    def __init__(self, job: ImportJob, *, dry_run: bool,
                 progress: Callable[[ImportJob], None] | None = None,
                 claim: Claim | None = None, resume_after: int = 0):
        self.job, self.dry_run, self.progress = job, dry_run, progress
        self.claim, self.resume_after = claim, resume_after
        self.outcome = Outcome()
        self.sample: list[dict] = []
        self.seen: dict[int, int] = {}  # phone digits -> first row number
        self.encoding = self.delimiter = ""
        self._blank = {name: Contact._meta.get_field(name).get_default() for name in FACT_FIELDS}
        self._blank["total_spent"] = Decimal(self._blank["total_spent"])
        self._consent_source = (job.consent_source or
                                _("import #%(id)s") % {"id": job.pk})[:200]
        self._column_sources: dict[str, str] = {}

    def execute(self) -> Outcome:
        job = self.job
        import_check_options(job=job)
        path = job.file.path
        size = max(os.path.getsize(path), 1)
        with open_table(path, encoding=job.encoding) as table:
            self.encoding, self.delimiter = table.encoding, table.delimiter
            self.mapping = map_columns(table.headers, attributes=job.extra_columns_to_attributes,
                                       consent_for_whatsapp=job.consent_for_whatsapp or ())
            if self.mapping.phone_index is None:
                found = ", ".join(f"“{h[:40]}”" for h in table.headers[:20] if h) or _("none")
                raise ImportRefused(_(
                    "The file has no phone column, so nothing was imported. Columns found: "
                    "%(cols)s. Name the column with the numbers “phone” (or phone_number, "
                    "Telefonnummer, 电话号码, 手机号, wa_id; Shopify's “Phone”, WooCommerce's "
                    "“billing_phone” and Chatwoot's “phone_number” are read as they "
                    "are).") % {"cols": found})
            self.tags = TagBook(actor=job.actor, dry_run=self.dry_run,
                                create_in=job.missing_tags_dimension
                                if job.create_missing_tags else None,
                                skip_unknown=job.unknown_tags == UnknownTags.SKIP,
                                reason=_("Created by import #%(id)s") % {"id": job.pk})
            parser = RowParser(self.mapping, region=job.region or None, tags=self.tags)
            self.failures = _FailedRows(table.headers, self._failed_path())
            self.batches = Batches(((raw, parser.parse(raw)) for raw in table.rows()),
                                   BATCH_SIZE)
            try:
                while True:
                    rows = self.batches.take()
                    last = len(rows) < BATCH_SIZE
                    batch, failures = self._collect(rows)
                    if self.outcome.rows <= self.resume_after:
                        self._replay(failures)
                    else:
                        self._flush(batch, failures,
                                    1.0 if last else self._fraction(table, size))
                    if last:
                        break
            finally:
                self.failures.close()
            self.encoding = table.encoding  # a file starting in plain ASCII decides late
        self.outcome.tags_created = self.tags.created
        if self.dry_run and not self.outcome.failed:
            self.failures.path.unlink(missing_ok=True)
        if not self.dry_run and self.outcome.failed:
            job.failed_rows.name = str(self.failures.path.relative_to(settings.MEDIA_ROOT))
            job.save(update_fields=["failed_rows"])
        return self.outcome

    def _collect(self, rows: list[tuple[RawRow, ParsedRow | RowFailure]]
                 ) -> tuple[list[ParsedRow], list[RowFailure]]:
        """Count, dedupe and sample one batch's parsed rows: (rows to write, failures)."""
        batch: list[ParsedRow] = []
        pending: list[RowFailure] = []
        erased = numbers_erased(r.phone for _raw, r in rows if isinstance(r, ParsedRow))
        for raw, result in rows:
            self.outcome.rows += 1
            if isinstance(result, ParsedRow) and result.phone in erased:
                result = RowFailure(raw.number, Reason.ERASED, _(
                    "This number was erased at its owner's request and is never imported "
                    "again."), raw.cells)
            if isinstance(result, ParsedRow):
                key = int(result.phone[1:])
                first = self.seen.setdefault(key, raw.number)
                if first != raw.number:
                    result = RowFailure(raw.number, Reason.DUPLICATE, _(
                        "%(phone)s is already in row %(first)d; the first occurrence "
                        "counts.") % {"phone": result.phone, "first": first}, raw.cells)
            if len(self.sample) < PREVIEW_ROWS:
                self.sample.append(self._sample(raw.number, raw.cells, result))
            if isinstance(result, RowFailure):
                pending.append(result)
            else:
                if result.warnings:
                    self._warn(result)
                batch.append(result)
        return batch, pending

    def _warn(self, row: ParsedRow) -> None:
        for code, message in row.warnings:
            self.outcome.warnings[code] += 1
            if len(self.outcome.warning_rows) < WARNING_ROWS:
                self.outcome.warning_rows.append((row.number, message))
        for tag in row.skipped:
            self.outcome.skipped_tags[tag] += 1

    def _failed_path(self) -> Path:
        if self.dry_run:
            directory = Path(settings.MEDIA_ROOT) / "imports" / "preview"
            directory.mkdir(parents=True, exist_ok=True)
            return Path(tempfile.mkstemp(dir=directory, suffix=".csv")[1])
        return Path(default_storage.path(f"imports/failed/import-{self.job.pk}-failed-rows.csv"))

    @staticmethod
    def _fraction(table, size: int) -> float:
        try:
            return min(table._close.__self__.tell() / size, 0.99)
        except (AttributeError, OSError, ValueError):
            return 0.0

    def _sample(self, number: int, cells: list[str], result) -> dict:
        if isinstance(result, RowFailure):
            outcome = f"{LABELS.get(result.reason, result.reason)}: {result.message}"
        else:
            outcome = " ".join(filter(None, [
                result.phone,
                "+" + ", ".join(t.name for t in result.add) if result.add else "",
                "−" + ", ".join(t.name for t in result.remove) if result.remove else "",
                _consent_note(result),
                *(message for _code, message in result.warnings),
            ]))
        return {"row_number": number, "cells": cells[:30], "outcome": outcome,
                "ok": not isinstance(result, RowFailure)}

    def _replay(self, failures: list[RowFailure]) -> None:
        """A batch a worker that died had committed (resuming): read again only to rebuild
        what is not in the database — the duplicate check, the failed rows file, the
        warnings — then take the counters as committed. Batches have a fixed size, so
        the cursor always falls between two of them."""
        for failure in failures:
            self.failures.write(failure)
        if self.outcome.rows == self.resume_after:
            job = ImportJob.objects.get(pk=self.job.pk)
            o = self.outcome
            (o.rows, o.created, o.updated, o.unchanged, o.failed, o.tags_added,
             o.tags_removed) = (job.rows, job.created, job.updated, job.unchanged, job.failed,
                                job.tags_added, job.tags_removed)
            o.errors = Counter(job.errors)
        if self.claim:
            self.claim.beat()

    def _flush(self, batch: list[ParsedRow], failures: list[RowFailure],
               fraction: float) -> None:
        for failure in failures:
            self.failures.write(failure)
            self.outcome.failed += 1
            self.outcome.errors[failure.reason] += 1
        if self.dry_run:
            self._apply(batch)
            ImportJob.objects.filter(pk=self.job.pk).update(progress=fraction)
            return
        for attempt in range(2):
            try:
                with transaction.atomic():
                    before = (self.outcome.created, self.outcome.updated, self.outcome.unchanged,
                              self.outcome.tags_added, self.outcome.tags_removed)
                    self._apply(batch)
                    if self.claim:
                        self.claim.beat()  # a worker that lost the job rolls its batch back
                    o = self.outcome
                    ImportJob.objects.filter(pk=self.job.pk).update(
                        rows=o.rows, created=o.created, updated=o.updated,
                        unchanged=o.unchanged, failed=o.failed, tags_added=o.tags_added,
                        tags_removed=o.tags_removed, errors=dict(o.errors), progress=fraction)
                break
            except IntegrityError:
                # Someone created one of these numbers at the same moment: read again.
                (self.outcome.created, self.outcome.updated, self.outcome.unchanged,
                 self.outcome.tags_added, self.outcome.tags_removed) = before
                if attempt:
                    raise
        if self.progress:
            self.job.rows, self.job.progress = self.outcome.rows, fraction
            self.progress(self.job)

    def _apply(self, batch: list[ParsedRow]) -> None:
        if not batch:
            return
        outcome = self.outcome
        fields = ["id", "is_blocked", "attributes", "joined_at", *CONSENT_FIELDS, *FACT_FIELDS]
        existing = {
            row["phone"]: row
            for row in Contact.objects.filter(phone_in([r.phone for r in batch]))
            .values("phone", *fields)
        }
        held = self._held(existing, batch)
        now = timezone.now()
        new_contacts: list[dict] = []
        updates: Updates = defaultdict(list)
        plans: list[tuple[ParsedRow, int | None]] = []
        for row in batch:
            current = existing.get(row.phone)
            if current is None:
                new_contacts.append(self._new_contact(row, now))
                plans.append((row, None))
                outcome.created += 1
                continue
            changes = self._changes(row, current, now)
            tag_change = any((current["id"], t.pk) not in held for t in row.add) or any(
                (current["id"], t.pk) in held for t in row.remove)
            if changes:
                updates[tuple(sorted(changes))].append((current["id"], changes, current))
            if changes or tag_change:
                outcome.updated += 1
            else:
                outcome.unchanged += 1
            plans.append((row, current["id"]))
        if self.dry_run:
            self._count_tags(plans, held)
            return
        self._change_tags(self._write_contacts(new_contacts, updates, plans, now))

    def _write_contacts(self, new_contacts: list[dict], updates: Updates,
                        plans: list[tuple[ParsedRow, int | None]], now
                        ) -> list[tuple[ParsedRow, int]]:
        """Create and change the batch's contacts (``crm.services`` writes them) and keep
        what undo needs: the contacts created, and the values overwritten as this batch
        read them. Returns ``plans`` with the new contacts' ids."""
        ids = contacts_insert(rows=new_contacts)
        _record_created(self.job, list(ids.values()))
        plain, earlier = _split_joined(updates)
        contacts_update(changes=plain, now=now)
        contacts_join_earlier(joined=earlier)
        _record_changes(self.job, updates)
        return [(row, ids[row.phone] if pk is None else pk) for row, pk in plans]

    def _new_contact(self, row: ParsedRow, now) -> dict:
        wanted = self._consent_wanted(row)
        values = dict(self._blank)
        values.update(
            phone=row.phone, country=row.country, attributes=row.attributes,
            consent_status=wanted or ConsentStatus.UNKNOWN,
            consent_source=self._consent_source_of(row), consent_at=now if wanted else None,
            created_at=now, updated_at=now,
            joined_at=min(row.joined, now) if row.joined else now, **row.facts)
        return values

    def _consent_wanted(self, row: ParsedRow) -> str | None:
        """The consent this row asks for: the row's own say first (per-row consent is never
        upgraded: a row saying no is never opted in), else the file's consent basis."""
        if row.consent == YES:
            return ConsentStatus.OPTED_IN
        if row.consent == OPT_OUT:
            return ConsentStatus.OPTED_OUT
        if row.consent == NO:
            return None
        return ConsentStatus.OPTED_IN if self.job.consent_basis == ConsentStatus.OPTED_IN \
            else None

    def _consent_source_of(self, row: ParsedRow) -> str:
        if row.consent not in (YES, OPT_OUT) or not row.consent_column:
            return self._consent_source
        column = row.consent_column
        if column not in self._column_sources:
            self._column_sources[column] = (_("“%(col)s” column of import #%(id)s") % {
                "col": column, "id": self.job.pk})[:200]
        return self._column_sources[column]

    def _changes(self, row: ParsedRow, current: dict, now) -> dict:
        overwrite = self.job.update_mode == UpdateMode.OVERWRITE
        changes = {
            name: value for name, value in row.facts.items()
            if current[name] != value and (overwrite or current[name] in EMPTY)
        }
        if row.joined and row.joined < current["joined_at"]:
            changes["joined_at"] = row.joined  # written as LEAST(joined_at, …): never later
        if row.attributes:
            attributes = dict(current["attributes"] or {})
            for key, value in row.attributes.items():
                if attributes.get(key) != value and (overwrite or not attributes.get(key)):
                    attributes[key] = value
            if attributes != (current["attributes"] or {}):
                changes["attributes"] = attributes
        # The consent rule says whether the row's wish may be granted: an opt-out is never
        # lifted, a blocklisted number never opted in.
        wanted = self._consent_wanted(row)
        if wanted and consent_change_allowed(current=current["consent_status"], new=wanted,
                                             is_blocked=current["is_blocked"]):
            changes.update(consent_status=wanted, consent_at=now,
                           consent_source=self._consent_source_of(row))
        return changes

    def _held(self, existing: dict, batch: list[ParsedRow]) -> set[tuple[int, int]]:
        """(contact, tag) pairs already held among the tags this batch touches and their
        single-choice rivals."""
        tag_ids = {t.id for r in batch for t in (*r.add, *r.remove) if t.id}
        if self.dry_run:
            dims = {t.dimension_id for r in batch for t in r.add if t.dimension.single_choice}
            tag_ids |= set(Tag.objects.filter(dimension_id__in=dims).values_list("pk", flat=True))
        if not existing or not tag_ids:
            return set()
        return set(TagAssignment.objects.filter(
            contact_id__in=[c["id"] for c in existing.values()], tag_id__in=tag_ids,
        ).values_list("contact_id", "tag_id"))

    def _count_tags(self, plans: list[tuple[ParsedRow, int | None]], held: set) -> None:
        rivals: dict[int, list[int]] = {}
        for row, contact_id in plans:
            for tag in row.add:
                if contact_id is not None and (contact_id, tag.pk) in held:
                    continue
                self.outcome.tags_added += 1
                if contact_id is not None and tag.dimension.single_choice and tag.pk:
                    if tag.pk not in rivals:
                        rivals[tag.pk] = list(Tag.objects.filter(dimension_id=tag.dimension_id)
                                              .exclude(pk=tag.pk).values_list("pk", flat=True))
                    self.outcome.tags_removed += sum(
                        (contact_id, r) in held for r in rivals[tag.pk])
            if contact_id is not None:
                self.outcome.tags_removed += sum((contact_id, t.pk) in held for t in row.remove)

    def _change_tags(self, plans: list[tuple[ParsedRow, int]]) -> None:
        adds: dict[int, list[int]] = defaultdict(list)  # by tag id: hashing a model is slow
        removes: dict[int, list[int]] = defaultdict(list)
        tags: dict[int, Tag] = {}
        for row, contact_id in plans:
            for tag in row.add:
                adds[tag.id].append(contact_id)
                tags[tag.id] = tag
            for tag in row.remove:
                removes[tag.id].append(contact_id)
                tags[tag.id] = tag
        # Parsing the next batch while PostgreSQL writes this one's tags — unless parsing
        # may create a missing tag, which is a write of its own.
        ahead = None if self.tags.create_in else self.batches.read_ahead
        result = tags_change_pairs(add={tags[t]: ids for t, ids in adds.items()},
                                   remove={tags[t]: ids for t, ids in removes.items()},
                                   meanwhile=ahead, actor=self.job.actor,
                                   source=Source.IMPORT, source_ref=self.job.source_ref,
                                   operation=self.job.operation)
        self.outcome.tags_added += result.added
        self.outcome.tags_removed += result.removed + result.replaced


def _record_created(job: ImportJob, ids: list[int]) -> None:
    """One ``ImportedContact`` row per contact the batch created, in one statement."""
    if connection.vendor != "postgresql":
        ImportedContact.objects.bulk_create(
            [ImportedContact(job_id=job.pk, contact_id=pk) for pk in ids])
    elif ids:  # one array literal, not a model instance and a parameter per row
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {ImportedContact._meta.db_table} (job_id, contact_id) "
                           "SELECT %s, unnest(%s::bigint[])",
                           [job.pk, "{" + ",".join(map(str, ids)) + "}"])


def _record_changes(job: ImportJob, updates: Updates) -> None:
    """One ``ImportedChange`` row per contact the batch changed, in one statement: the
    fields' values as the batch read them (``before``) and as it wrote them (``after``)."""
    rows = [(pk, {n: _jsonable(current[n]) for n in values},
             {n: _jsonable(v) for n, v in values.items()})
            for entries in updates.values() for pk, values, current in entries]
    if connection.vendor != "postgresql":
        ImportedChange.objects.bulk_create([ImportedChange(job_id=job.pk, contact_id=pk,
                                                           before=before, after=after)
                                            for pk, before, after in rows])
    elif rows:  # COPY: psycopg adapts a list of ten thousand texts element by element
        with connection.cursor() as cursor, cursor.cursor.copy(
                f"COPY {ImportedChange._meta.db_table} (job_id, contact_id, before, after) "
                "FROM STDIN") as copy:
            for pk, before, after in rows:
                copy.write_row((job.pk, pk, json.dumps(before), json.dumps(after)))


def _new_values(updates: Updates) -> dict[tuple[str, ...], list[tuple[int, dict]]]:
    return {names: [(pk, values) for pk, values, _ in entries]
            for names, entries in updates.items()}


def _split_joined(updates: Updates) -> tuple[dict, list[tuple[int, object]]]:
    """(the changes for ``contacts_update``, the ``joined_at`` values for
    ``contacts_join_earlier``): it only ever moves earlier, so it is written with ``LEAST``
    rather than overwritten."""
    plain: dict[tuple[str, ...], list[tuple[int, dict]]] = defaultdict(list)
    earlier: list[tuple[int, object]] = []
    for names, entries in updates.items():
        rest = tuple(n for n in names if n != "joined_at")
        for pk, values, _current in entries:
            if "joined_at" in values:
                earlier.append((pk, values["joined_at"]))
            if rest:
                plain[rest].append((pk, {n: values[n] for n in rest}))
    return plain, earlier


def _consent_note(row: ParsedRow) -> str:
    """The preview's word on a row whose consent column decided."""
    if row.consent == YES:
        return _("opted in (“%(col)s”)") % {"col": row.consent_column}
    if row.consent == OPT_OUT:
        return _("opted out (“%(col)s”)") % {"col": row.consent_column}
    if row.consent == NO:
        return _("not opted in (“%(col)s”)") % {"col": row.consent_column}
    return ""


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    return value.isoformat() if isinstance(value, date) else value


def _restore_changes(job: ImportJob, now) -> tuple[int, int]:
    """Put back what the import overwrote on existing contacts; return (restored, kept).

    A field is restored only while it still holds the value the import wrote; one that
    something else changed since keeps its later value (and the contact counts as kept).
    Attributes are compared key by key; the consent fields as one: restored only if
    status, source and time are all still the import's, and never back to opted in
    for a contact that is no longer opted in or is blocklisted.
    """
    restored = kept = 0
    changes = job.changed_contacts.order_by("pk").values_list("contact_id", "before", "after")
    chunk: list[tuple[int, dict, dict]] = []
    for item in [*changes.iterator(chunk_size=BATCH_SIZE), None]:
        if item is not None:
            chunk.append(item)
            if len(chunk) < BATCH_SIZE:
                continue
        current = {row["id"]: row for row in Contact.objects.filter(
            pk__in=[pk for pk, _, _ in chunk]).values("id", "is_blocked", *_RESTORABLE)}
        groups: Updates = defaultdict(list)
        for pk, before, after in chunk:
            if pk not in current:
                continue  # deleted since
            values, changed_since = _restore_values(current[pk], before, after)
            if values:
                groups[tuple(sorted(values))].append((pk, values, current[pk]))
                restored += 1
            kept += changed_since
        contacts_update(changes=_new_values(groups), now=now)
        chunk = []
    return restored, kept


_RESTORABLE = [*FACT_FIELDS, "attributes", "joined_at", *CONSENT_FIELDS]


def _restore_values(current: dict, before: dict, after: dict) -> tuple[dict, bool]:
    def value(name: str, raw):
        return Contact._meta.get_field(name).to_python(raw)

    values: dict = {}
    changed_since = False
    for name, new in after.items():
        if name in CONSENT_FIELDS or name == "attributes":
            continue
        if current[name] == value(name, new):
            values[name] = value(name, before.get(name))
        else:
            changed_since = True
    if "attributes" in after:
        attributes, old = dict(current["attributes"] or {}), before.get("attributes") or {}
        for key, new in after["attributes"].items():
            if old.get(key) == new:
                continue  # the import did not change this key
            if attributes.get(key) != new:
                changed_since = True
            elif key in old:
                attributes[key] = old[key]
            else:
                del attributes[key]
        if attributes != (current["attributes"] or {}):
            values["attributes"] = attributes
    consent = [n for n in CONSENT_FIELDS if n in after]
    if consent:
        untouched = all(current[n] == value(n, after[n]) for n in consent)
        if untouched and consent_change_allowed(
                current=current["consent_status"], is_blocked=current["is_blocked"],
                new=value("consent_status", before.get("consent_status"))):
            values.update({n: value(n, before.get(n)) for n in consent})
        else:
            changed_since = True
    return values, changed_since


# --- Privacy: an erased contact's rows in imports; retention of files (docs/privacy.md) ----

def contact_imports_erase(*, subject: Subject) -> int:
    """Remove the subject from every import: what undo would restore (its old values), the
    preview's sample rows and report lines naming it, and its rows in the stored files
    (uploads, failed-rows files). Counts of the import reports stay as they were.

    Every job is looked at, not only those that touched the contact: a failed row names
    a number without creating a contact. Files are few, kept for ``import_files`` days.
    """
    touched = ImportedChange.objects.filter(contact_id=subject.contact.pk).delete()[0]
    for job in ImportJob.objects.only("pk", "preview", "report", "errors", "file",
                                      "failed_rows").iterator():
        scrubbed = {name: subject.scrub(getattr(job, name))
                    for name in ("preview", "report", "errors")}
        if any(scrubbed[name] != getattr(job, name) for name in scrubbed):
            ImportJob.objects.filter(pk=job.pk).update(**scrubbed)
            touched += 1
        paths = [f.path for f in (job.file, job.failed_rows) if f and f.name]
        if (job.preview or {}).get("failed_rows_file"):
            paths.append(job.preview["failed_rows_file"])
        touched += sum(_file_rows_erase(Path(path), subject) for path in paths)
    return touched


def _file_rows_erase(path: Path, subject: Subject) -> int:
    """Drop the rows of one stored file that name the subject; return how many went."""
    if not path.is_file():
        return 0
    raw = path.read_bytes()
    if raw[:2] == b"PK":  # XLSX (a zip)
        return _workbook_rows_erase(path, subject)
    try:  # read as the import reads it: the file's encoding, each line in its own
        encoding = detect_encoding(raw, complete=True)
    except UnreadableFile:
        encoding = "latin-1"  # every byte reads: the number's digits are still found
    if encoding.startswith("utf-16"):
        lines = raw.decode(encoding, "replace").splitlines(keepends=True)
        kept = [line for line in lines if not subject.matches(line)]
        data = "".join(kept).encode(encoding)
    else:  # line by line on the bytes: the lines kept are written back untouched
        lines = raw.splitlines(keepends=True)
        kept = [line for line in lines
                if not subject.matches(line.decode(guess_encoding(line) or encoding, "replace"))]
        data = b"".join(kept)
    if len(kept) != len(lines):
        path.write_bytes(data)
    return len(lines) - len(kept)


def _workbook_rows_erase(path: Path, subject: Subject) -> int:
    from openpyxl import load_workbook

    workbook = load_workbook(path)
    gone = 0
    for sheet in workbook.worksheets:
        for index in range(sheet.max_row, 0, -1):
            if any(subject.matches(cell.value) for cell in sheet[index]):
                sheet.delete_rows(index)
                gone += 1
    if gone:
        workbook.save(path)
    return gone


def _older(before) -> Q:
    """Finished before ``before``, or never finished and uploaded before it."""
    return Q(finished_at__lt=before) | Q(finished_at__isnull=True, created_at__lt=before)


def import_files_prune(before, limit: int) -> int:
    """Delete the uploaded files of up to ``limit`` imports finished before ``before``, with
    the preview's sample rows; the reports and counts stay."""
    jobs = list(ImportJob.objects.filter(_older(before)).exclude(file="")
                .order_by().only("pk", "file", "preview")[:limit])
    for job in jobs:
        job.file.delete(save=False)
        _discard_preview_file(job)
        ImportJob.objects.filter(pk=job.pk).update(
            file="", preview={**(job.preview or {}), "rows": []})
    return len(jobs)


def failed_row_files_prune(before, limit: int) -> int:
    """Delete the failed-rows files of up to ``limit`` imports finished before ``before``."""
    jobs = list(ImportJob.objects.filter(_older(before)).exclude(failed_rows="")
                .order_by().only("pk", "failed_rows")[:limit])
    for job in jobs:
        job.failed_rows.delete(save=False)
        ImportJob.objects.filter(pk=job.pk).update(failed_rows="")
    return len(jobs)
