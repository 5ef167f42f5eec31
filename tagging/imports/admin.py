"""Admin screens for imports: upload → preview → confirm → progress → report → undo,
and the contact list's export actions."""

from __future__ import annotations

import tempfile

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as gettext_now
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from crm.admin import ContactAdminPart
from crm.jobs import enqueue, job_queue
from crm.models import Contact
from tagging.imports.exports import contacts_export, export_csv_lines
from tagging.imports.models import ConsentBasis, ImportJob, ImportStatus, UnknownTags
from tagging.imports.reader import NAMES
from tagging.imports.rules import LABELS
from tagging.imports.services import (
    IMPORT_JOB,
    IMPORT_UNDO_JOB,
    ImportRefused,
    file_sha256,
    import_check_options,
)
from tagging.imports.tasks import import_analyse_task
from tagging.permissions import undo_refusal, undo_refusal_for
from tagging.selectors import operation_tags


def outcome_text(outcome: str) -> str:
    """A preview row's outcome with its reason code turned into words (codes stay stored)."""
    code, sep, rest = outcome.partition(": ")
    if sep and code in LABELS:
        return f"{LABELS[code]}: {rest}"
    return outcome

ACTIVE = {ImportStatus.UPLOADED, ImportStatus.ANALYSING, ImportStatus.QUEUED,
          ImportStatus.RUNNING}


class ImportForm(forms.ModelForm):
    class Meta:
        model = ImportJob
        fields = ["file", "consent_basis", "consent_source", "region", "encoding",
                  "update_mode", "unknown_tags", "missing_tags_dimension",
                  "extra_columns_to_attributes"]
        widgets = {"consent_basis": forms.RadioSelect, "update_mode": forms.RadioSelect,
                   "unknown_tags": forms.RadioSelect}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if "missing_tags_dimension" in self.fields:  # no new tags in an archived dimension
            field = self.fields["missing_tags_dimension"]
            field.queryset = field.queryset.filter(is_archived=False)
        self.fields["consent_basis"].help_text = _(
            "Required: state on what basis the people in this file may get WhatsApp "
            "marketing. Opted-out and blocklisted numbers are never switched back.")

    def clean_region(self):
        return (self.cleaned_data.get("region") or "").upper()

    def clean(self):
        data = super().clean()
        if data.get("consent_basis") == ConsentBasis.OPTED_IN and not data.get("consent_source"):
            self.add_error("consent_source", _("Say where these people opted in, e.g. "
                                               "“newsletter form on the shop”."))
        if data.get("unknown_tags") == UnknownTags.CREATE:
            probe = ImportJob(actor=self.user, unknown_tags=UnknownTags.CREATE,
                              missing_tags_dimension=data.get("missing_tags_dimension"))
            try:
                import_check_options(job=probe)
            except ImportRefused as exc:
                self.add_error("unknown_tags", str(exc))
        return data


class PreviewOptionsForm(forms.ModelForm):
    """The choices a preview can change: unknown tags, and which other channels' consent
    columns count for WhatsApp. Saving runs the preview again."""

    consent_for_whatsapp = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        label=_("Count “yes” in these columns as a WhatsApp opt-in"))

    class Meta:
        model = ImportJob
        fields = ["unknown_tags", "missing_tags_dimension", "consent_for_whatsapp"]
        widgets = {"unknown_tags": forms.RadioSelect}

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        field = self.fields["missing_tags_dimension"]
        field.queryset = field.queryset.filter(is_archived=False)
        columns = [c["header"] for c in (self.instance.preview or {}).get("mapping", [])
                   if c.get("channel") in ("sms", "email")]
        self.fields["consent_for_whatsapp"].choices = [(c, c) for c in columns]

    def clean(self):
        data = super().clean()
        if data.get("unknown_tags") == UnknownTags.CREATE:
            probe = ImportJob(actor=self.user, unknown_tags=UnknownTags.CREATE,
                              missing_tags_dimension=data.get("missing_tags_dimension"))
            try:
                import_check_options(job=probe)
            except ImportRefused as exc:
                self.add_error("unknown_tags", str(exc))
        return data


EVERY_COLUMN_COUNTS = {"tags", "remove_tags", "consent", "attribute", "ignored", "unused"}


def column_labels(mapping: list[dict]) -> list[dict]:
    """What the preview says each column was recognised as, in words; a column that stands
    in for others says for which (Shopify's “Default Address Phone”, when “Phone” is empty)."""
    order = [(c.get("rank", 0), i) for i, c in enumerate(mapping)]
    labelled = []
    for i, column in enumerate(mapping):
        label = _target_label(column)
        before = [mapping[j]["header"] for j, other in enumerate(mapping)
                  if other["target"] == column["target"] and order[j] < order[i]]
        if before and column["target"] not in EVERY_COLUMN_COUNTS:
            label = gettext_now("%(what)s, when %(cols)s is empty") % {
                "what": label, "cols": gettext_now(" and ").join(f"“{h}”" for h in before)}
        labelled.append({**column, "label": label})
    return labelled


def _target_label(column: dict) -> str:
    target = column["target"]
    if target == "consent":
        return {
            "whatsapp": gettext_now("WhatsApp consent (yes opts in, no never does)"),
            "sms": gettext_now("SMS consent: a no keeps the row from being opted in; its yes "
                               "counts for WhatsApp only if ticked below"),
            "email": gettext_now("e-mail consent: a no keeps the row from being opted in; its "
                                 "yes counts for WhatsApp only if ticked below"),
            "blocked": gettext_now("blocked: a blocked row is never opted in"),
        }[column.get("channel", "whatsapp")]
    if target in ("first_name", "last_name", "salutation", "gender", "birth_date", "language",
                  "city", "occupation", "external_label", "notes", "total_spent"):
        return str(Contact._meta.get_field(target).verbose_name)
    return {
        "phone": gettext_now("phone number"),
        "country": gettext_now("country of the row's phone number (before the default "
                               "country)"),
        "tags": gettext_now("tags to add"),
        "remove_tags": gettext_now("tags to remove"),
        "name": gettext_now("full name (split into first and last name)"),
        "email": gettext_now("e-mail (kept in the contact's attributes)"),
        "purchase_count": gettext_now("number of orders"),
        "joined": gettext_now("customer since"),
        "attribute": gettext_now("attribute (kept as it is)"),
        "ignored": gettext_now("not imported: Tagwerk keeps this itself"),
        "unused": gettext_now("not imported: not recognised"),
    }.get(target, target)


def _labelled(counts: dict) -> list[tuple[str, str, int]]:
    """(code, words, count) by count, for the report's tables."""
    return [(code, str(LABELS.get(code, code)), n)
            for code, n in sorted((counts or {}).items(), key=lambda kv: -kv[1])]


def _undo_refusal(user, job: ImportJob) -> str:
    """Why ``user`` may not undo ``job`` (not theirs, or a dimension they lost); empty if
    they may."""
    return undo_refusal_for(user, job.actor_id, undo_refusal("import"),
                            operation_tags(job.operation))


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    form = ImportForm
    list_display = ["__str__", "status", "rows", "created", "updated", "unchanged", "failed",
                    "tags_added", "tags_removed", "actor", "created_at"]
    list_filter = ["status"]
    list_select_related = ["actor"]
    job_template = "admin/imports/importjob/job.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)

        class RequestForm(form):
            def __init__(self, *args, **kw):
                super().__init__(*args, user=request.user, **kw)

        return RequestForm

    def has_change_permission(self, request, obj=None):
        return False  # a job is read, confirmed or undone, never edited

    def add_view(self, request, form_url="", extra_context=None):
        # One file at a time: the upload leads to its preview, so no "add another".
        extra_context = {**(extra_context or {}), "show_save_and_add_another": False,
                         "show_save_and_continue": False,
                         "title": _("Upload a contact list")}
        return super().add_view(request, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        obj.actor = request.user
        obj.original_name = form.cleaned_data["file"].name[:255]
        super().save_model(request, obj, form, change)
        obj.file_sha256 = file_sha256(obj.file.path)
        obj.save(update_fields=["file_sha256"])
        enqueue(import_analyse_task.name, obj.pk)

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[obj.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[object_id]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/job/", wrap(self.job_view), name="imports_importjob_job"),
            path("<int:pk>/status.json", wrap(self.status_view),
                 name="imports_importjob_status"),
            path("<int:pk>/confirm/", wrap(self.confirm_view), name="imports_importjob_confirm"),
            path("<int:pk>/options/", wrap(self.options_view), name="imports_importjob_options"),
            path("<int:pk>/undo/", wrap(self.undo_view), name="imports_importjob_undo"),
            path("<int:pk>/failed-rows/", wrap(self.failed_rows_view),
                 name="imports_importjob_failed_rows"),
            *super().get_urls(),
        ]

    def _job(self, request, pk: int) -> ImportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(ImportJob.objects.select_related("actor"), pk=pk)

    def job_view(self, request, pk: int):
        job = self._job(request, pk)
        counts = job.preview.get("counts", {}) if job.status == ImportStatus.READY else None
        can_add = self.has_add_permission(request)
        undoable = job.status in (ImportStatus.DONE, ImportStatus.FAILED)
        refused = _undo_refusal(request.user, job) if undoable else ""
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "job": job,
            "title": _("Import #%(id)s: %(name)s") % {"id": job.pk, "name": job.original_name},
            "active": job.status in ACTIVE, "counts": counts,
            "errors": _labelled(job.errors), "warnings": _labelled(job.report.get("warnings")),
            "preview_errors": _labelled((counts or {}).get("errors")),
            "preview_warnings": _labelled((counts or {}).get("warnings")),
            "columns": column_labels(job.preview.get("mapping", [])),
            "encoding": NAMES.get(job.preview.get("encoding", ""), "XLSX"),
            "options_form": PreviewOptionsForm(instance=job, user=request.user)
            if job.status == ImportStatus.READY and can_add else None,
            "sample": [{**row, "outcome": outcome_text(row.get("outcome", ""))}
                       for row in (job.preview or {}).get("rows", [])],
            "can_confirm": job.status == ImportStatus.READY and self.has_add_permission(request),
            "can_undo": undoable and self.has_add_permission(request) and not refused,
            "undo_refused": refused if undoable else "",
        }
        return TemplateResponse(request, self.job_template, context)

    def status_view(self, request, pk: int):
        job = self._job(request, pk)
        return JsonResponse({
            "status": job.status, "status_label": job.get_status_display(),
            "progress": round(job.progress, 4), "rows": job.rows, "created": job.created,
            "updated": job.updated, "unchanged": job.unchanged, "failed": job.failed,
            "tags_added": job.tags_added, "tags_removed": job.tags_removed,
            "errors": job.errors, "active": job.status in ACTIVE,
        })

    def confirm_view(self, request, pk: int):
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        with transaction.atomic():
            updated = ImportJob.objects.filter(pk=pk, status=ImportStatus.READY).update(
                status=ImportStatus.QUEUED, progress=0)
            if updated:
                job_queue(IMPORT_JOB, pk)
        if not updated:
            messages.warning(request, _("This import is not waiting for confirmation."))
        return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[pk]))

    def options_view(self, request, pk: int):
        """Change the preview's choices and run the preview again (nothing is imported)."""
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        job = self._job(request, pk)
        if job.status != ImportStatus.READY:
            messages.warning(request, _("This import is not waiting for confirmation."))
            return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[pk]))
        form = PreviewOptionsForm(request.POST, instance=job, user=request.user)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[pk]))
        with transaction.atomic():
            job = form.save(commit=False)
            job.status = ImportStatus.UPLOADED
            job.save(update_fields=["unknown_tags", "missing_tags_dimension",
                                    "consent_for_whatsapp", "status"])
            enqueue(import_analyse_task.name, job.pk)
        messages.success(request, _("The preview is running again with your choices."))
        return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[pk]))

    def undo_view(self, request, pk: int):
        if request.method != "POST" or not self.has_add_permission(request):
            raise PermissionDenied
        job = self._job(request, pk)
        refused = _undo_refusal(request.user, job)
        if refused:
            messages.error(request, refused)
        elif job.undone_at:
            messages.info(request, _("This import was already undone; nothing changed."))
        else:
            job_queue(IMPORT_UNDO_JOB, job.pk, request.user.pk)
            messages.success(request, _("The import is being undone."))
        return HttpResponseRedirect(reverse("admin:imports_importjob_job", args=[pk]))

    def failed_rows_view(self, request, pk: int):
        job = self._job(request, pk)
        if job.failed_rows:
            handle, name = job.failed_rows.open("rb"), f"import-{job.pk}-failed-rows.csv"
        elif job.preview.get("failed_rows_file"):
            try:
                handle, name = open(job.preview["failed_rows_file"], "rb"), (  # noqa: SIM115
                    f"import-{job.pk}-dry-run-failed-rows.csv")
            except FileNotFoundError:
                raise Http404(_("The preview's failed rows are no longer kept. Upload the "
                                "file again to see them.")) from None
        else:
            raise Http404(_("This import has no failed rows."))
        return FileResponse(handle, as_attachment=True, filename=name,
                            content_type="text/csv; charset=utf-8")


class ExportContactPart(ContactAdminPart):
    """“Export selected contacts” as CSV or XLSX in the contacts list."""

    def actions(self, request, model_admin) -> dict:
        if not request.user.has_perm("crm.export_contacts"):
            return {}
        return {
            "export_contacts_csv": (export_contacts_csv, "export_contacts_csv",
                                    _("Export selected contacts as CSV")),
            "export_contacts_xlsx": (export_contacts_xlsx, "export_contacts_xlsx",
                                     _("Export selected contacts as XLSX")),
        }


def export_contacts_csv(model_admin, request, queryset):
    response = StreamingHttpResponse(export_csv_lines(queryset),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="contacts-{timezone.now():%Y%m%d-%H%M}.csv"')
    return response


def export_contacts_xlsx(model_admin, request, queryset):
    # openpyxl writes the workbook row by row to a temporary file, then it streams.
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it)
    count = contacts_export(queryset=queryset, out=handle, fmt="xlsx")
    handle.seek(0)
    model_admin.message_user(request, ngettext("%(n)d contact exported.",
                                               "%(n)d contacts exported.", count) % {"n": count})
    return FileResponse(handle, as_attachment=True,
                        filename=f"contacts-{timezone.now():%Y%m%d-%H%M}.xlsx")
