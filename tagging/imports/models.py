"""Import jobs: one uploaded file, its options, its progress and its report."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tagging.models import Dimension


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("uploaded")
    ANALYSING = "analysing", _("analysing (dry run)")
    READY = "ready", _("ready to import")
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("importing")
    DONE = "done", _("done")
    REFUSED = "refused", _("refused")
    FAILED = "failed", _("failed")
    UNDONE = "undone", _("undone")


class ConsentBasis(models.TextChoices):
    OPTED_IN = "opted_in", _("everyone in the file opted in to WhatsApp marketing")
    UNKNOWN = "unknown", _("consent unknown (do not message until they opt in)")


class UpdateMode(models.TextChoices):
    FILL_EMPTY = "fill_empty", _("only fill empty fields of existing contacts")
    OVERWRITE = "overwrite", _("overwrite fields of existing contacts with the file's values")


class UnknownTags(models.TextChoices):
    FAIL = "fail", _("fail the row (nothing of it is imported)")
    SKIP = "skip", _("import the row without the unknown tags, with a warning")
    CREATE = "create", _("create the missing tags (tag administrators only)")


class ImportJob(models.Model):
    """One import of one file. Counters always equal what is in the database."""

    created_at = models.DateTimeField(_("uploaded"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                              blank=True, related_name="+", verbose_name=_("by"))
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", max_length=255,
                            help_text=_("CSV, TXT or XLSX with a header row and a phone column."))
    original_name = models.CharField(_("file name"), max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True, db_index=True, editable=False)

    region = models.CharField(
        _("default country"), max_length=2, blank=True,
        help_text=_("Two-letter country code for numbers written without +country code, "
                    "e.g. DE. Empty: the site default."))
    encoding = models.CharField(
        _("encoding"), max_length=20, blank=True,
        help_text=_("Leave empty to detect it (UTF-8, UTF-16, GB18030, Windows-1252)."))
    consent_basis = models.CharField(_("consent basis"), max_length=10,
                                     choices=ConsentBasis.choices)
    consent_source = models.CharField(
        _("consent source"), max_length=200, blank=True,
        help_text=_("Where the people in the file opted in, e.g. “shop checkout 2024”."))
    update_mode = models.CharField(_("existing contacts"), max_length=12,
                                   choices=UpdateMode.choices, default=UpdateMode.FILL_EMPTY)
    unknown_tags = models.CharField(
        _("unknown tags"), max_length=6, choices=UnknownTags.choices, default=UnknownTags.FAIL,
        help_text=_("What happens to a row naming a tag that does not exist. Created tags go "
                    "into the dimension below and are logged in the tag version log."))
    missing_tags_dimension = models.ForeignKey(
        Dimension, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("dimension for new tags"))
    consent_for_whatsapp = models.JSONField(
        _("consent columns that count for WhatsApp"), default=list, blank=True,
        help_text=_("Consent columns of other channels (e.g. “Accepts SMS Marketing”) whose "
                    "“yes” the importer counts as a WhatsApp opt-in. A “no” in any consent "
                    "column always keeps the row from being opted in."))
    extra_columns_to_attributes = models.BooleanField(
        _("keep other columns as attributes"), default=False,
        help_text=_("Columns that are not contact fields are stored in the contact's "
                    "attributes instead of being ignored."))

    status = models.CharField(_("status"), max_length=10, choices=ImportStatus.choices,
                              default=ImportStatus.UPLOADED)
    message = models.TextField(_("message"), blank=True)
    operation = models.UUIDField(default=uuid.uuid4, editable=False,
                                 help_text=_("Shared by every tag change this import made."))
    progress = models.FloatField(_("progress"), default=0)
    rows = models.PositiveIntegerField(_("rows read"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    tags_added = models.PositiveIntegerField(_("tags added"), default=0)
    tags_removed = models.PositiveIntegerField(_("tags removed"), default=0)
    errors = models.JSONField(_("failures by reason"), default=dict, blank=True)
    preview = models.JSONField(_("preview"), default=dict, blank=True)
    report = models.JSONField(_("report"), default=dict, blank=True)
    failed_rows = models.FileField(_("failed rows"), upload_to="imports/failed/",
                                   max_length=255, blank=True)
    undone_at = models.DateTimeField(_("undone"), null=True, blank=True)
    undo_report = models.JSONField(_("undo report"), default=dict, blank=True)

    class Meta:
        verbose_name = _("contact import")
        verbose_name_plural = _("contact imports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name}"

    @property
    def source_ref(self) -> str:
        return f"import:{self.pk}"

    @property
    def create_missing_tags(self) -> bool:
        return self.unknown_tags == UnknownTags.CREATE


class ImportedContact(models.Model):
    """A contact an import created: what undo may remove again."""

    # No constraints: the contact may be deleted later, and the record of the import stays;
    # the job's would be checked at commit with a row lock per created contact (Django's
    # delete collector still cascades a deleted job). The unique index serves job lookups.
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="created_contacts",
                            db_constraint=False, db_index=False)
    contact = models.ForeignKey("crm.Contact", on_delete=models.DO_NOTHING, related_name="+",
                                db_constraint=False, db_index=False)

    class Meta:
        verbose_name = _("contact created by an import")
        verbose_name_plural = _("contacts created by imports")
        constraints = [models.UniqueConstraint(fields=["job", "contact"],
                                               name="imports_contact_unique")]

    def __str__(self) -> str:
        return f"{self.job_id} · {self.contact_id}"


class ImportedChange(models.Model):
    """The fields an import changed on an existing contact: what undo may put back.

    ``before`` and ``after`` hold the changed fields only, as JSON (dates and times as
    ISO text). Undo restores a field only while it still holds ``after``.
    """

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="changed_contacts")
    # No constraint, as for ImportedContact: the contact may be deleted later.
    contact = models.ForeignKey("crm.Contact", on_delete=models.DO_NOTHING, related_name="+",
                                db_constraint=False, db_index=False)
    before = models.JSONField(_("values before the import"), default=dict)
    after = models.JSONField(_("values the import wrote"), default=dict)

    class Meta:
        verbose_name = _("contact changed by an import")
        verbose_name_plural = _("contacts changed by imports")
        constraints = [models.UniqueConstraint(fields=["job", "contact"],
                                               name="imports_change_unique")]

    def __str__(self) -> str:
        return f"{self.job_id} · {self.contact_id}"
