"""Audiences in the admin: the expression box, tag filters, “Manage tags”, segments.

``AudienceContactPart`` adds the first three to the contacts list; the segment
and bulk-operation admins are registered here.
"""

from __future__ import annotations

import contextlib

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from crm.admin import ContactAdminPart
from tagging.audiences.language import SegmentError, TagRef, parse
from tagging.audiences.models import BulkOperation, BulkStatus, Segment
from tagging.audiences.selectors import (
    bitmap_matching,
    bulk_operation_tags,
    contacts_matching,
    count_matching,
    ids_matching,
)
from tagging.audiences.services import (
    bulk_operation_start,
    bulk_operation_undo,
    bulk_preview,
    segment_counts_refresh,
)
from tagging.audiences.sql import to_q
from tagging.models import Dimension, Tag
from tagging.permissions import (
    APPLY,
    applicable_dimension_ids,
    undo_refusal,
    undo_refusal_for,
)
from tagging.services import TagChangeError

EXPR = "expr"


class ExpressionFilter(admin.ListFilter):
    """Applies ``?expr=`` to the list; the box itself sits above the list."""

    title = gettext_lazy("expression")
    template = "admin/audiences/expression_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        value = params.pop(EXPR, [""])
        self.value = (value[-1] if isinstance(value, list) else value).strip()
        self.error: SegmentError | None = None

    def has_output(self) -> bool:
        return True  # a filter without output is not applied at all

    def expected_parameters(self) -> list[str]:
        return [EXPR]

    def choices(self, changelist):
        return [{"value": self.value, "error": self.error,
                 "clear_url": changelist.get_query_string(remove=[EXPR])}]

    def queryset(self, request, queryset):
        if not self.value:
            return queryset
        try:
            return contacts_matching(self.value, queryset)
        except SegmentError as error:
            self.error = error
            return queryset.none()


def dimension_filter(dimension: Dimension, tags: list[Tag]) -> type[admin.SimpleListFilter]:
    """A sidebar filter “has tag / has not tag” for one dimension (EXISTS, no join)."""

    class TagFilter(admin.SimpleListFilter):
        title = dimension.name
        parameter_name = f"tag_d{dimension.pk}"

        def lookups(self, request, model_admin):
            return [*((str(t.pk), _("has %(tag)s") % {"tag": t.name}) for t in tags),
                    *((f"-{t.pk}", _("has not %(tag)s") % {"tag": t.name}) for t in tags)]

        def queryset(self, request, queryset):
            value = self.value() or ""
            if not value.lstrip("-").isdigit():
                return queryset
            q = to_q(TagRef("", 0, (int(value.lstrip("-")),)))
            return queryset.filter(~q if value.startswith("-") else q)

    return TagFilter


class ManageTagsForm(forms.Form):
    add = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Add these tags"), required=False,
        queryset=Tag.objects.filter(is_archived=False).select_related("dimension"),
        widget=forms.CheckboxSelectMultiple,
    )
    remove = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Remove these tags"), required=False,
        queryset=Tag.objects.select_related("dimension"),
        widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        # The picker shows the dimensions the user may apply; a tag outside them that is
        # posted anyway is refused by the tag service, with its reason.
        allowed = applicable_dimension_ids(user)
        tags = self.fields["remove"].queryset
        self.pickable = tags if allowed is None else tags.filter(dimension_id__in=allowed)

    def clean(self):
        data = super().clean()
        if not data.get("add") and not data.get("remove"):
            raise forms.ValidationError(_("Choose at least one tag to add or remove."))
        return data


def _chip_groups(form: ManageTagsForm, holders: dict[int, int], total: int) -> list[dict]:
    """The picker's content: per dimension its tags, and per tag how many of the selected
    contacts hold it (so gain = total − holders when added, lose = holders when removed)."""
    chosen_add = {str(v) for v in (form["add"].value() or [])}
    chosen_remove = {str(v) for v in (form["remove"].value() or [])}
    groups: dict[int, dict] = {}
    tags = form.pickable.order_by("dimension__order", "dimension__name", "name")
    for tag in tags:
        group = groups.setdefault(tag.dimension_id, {
            "dimension": tag.dimension, "tags": []})
        held = holders.get(tag.pk, 0)
        group["tags"].append({
            "tag": tag, "held": held, "gain": max(total - held, 0),
            "add": str(tag.pk) in chosen_add, "remove": str(tag.pk) in chosen_remove,
            "can_add": not tag.is_archived,
        })
    return list(groups.values())


def _expression_only(request: HttpRequest) -> bool:
    """The list is filtered by the expression box and nothing else."""
    return bool(request.GET.get(EXPR, "").strip()) and not set(request.GET) - {EXPR, "p", "o"}


def _selection_text(request: HttpRequest, select_across: bool, count: int) -> str:
    """How the contacts were chosen, as the user saw it, for the operation's record."""
    if not select_across:
        return _("%(n)s selected rows") % {"n": count}
    params = {k: v for k, v in request.GET.items() if k not in ("p", "o", EXPR)}
    parts = [request.GET.get(EXPR, "").strip()]
    if params:
        parts.append(_("filters: %(f)s") % {"f": urlencode(params)})
    return " · ".join(p for p in parts if p) or _("all contacts")


class AudienceContactPart(ContactAdminPart):
    """The expression box with its live count, a filter per dimension, “Manage tags”, and
    paging through the index when the expression is the only filter."""

    changelist_includes = ["admin/audiences/expression_box.html"]

    @staticmethod
    def _vocabulary(request) -> dict[int, tuple[Dimension, list[Tag]]]:
        """Every tag by dimension: one query per request, shared by the filters and the box."""
        if not hasattr(request, "_tw_vocabulary"):
            by_dimension: dict[int, tuple[Dimension, list[Tag]]] = {}
            for tag in Tag.objects.select_related("dimension").order_by(
                    "dimension__order", "dimension__name", "name"):
                by_dimension.setdefault(tag.dimension_id, (tag.dimension, []))[1].append(tag)
            request._tw_vocabulary = by_dimension
        return request._tw_vocabulary

    def list_filter(self, request, filters: list) -> list:
        return [ExpressionFilter, *filters,
                *(dimension_filter(d, tags) for d, tags in self._vocabulary(request).values())]

    def paginator(self, request, paginator):
        if _expression_only(request):
            # The expression is the only filter: count it the cheapest way (the in-memory
            # index, else SQL); in the default order, page through the index's ids.
            expression = request.GET[EXPR].strip()
            with contextlib.suppress(SegmentError):  # the filter reports it
                if "o" not in request.GET:
                    paginator.matches = bitmap_matching(expression)
                if paginator.matches is None:
                    paginator.count = count_matching(expression)
        return paginator

    def urls(self, model_admin) -> list:
        info = model_admin.opts.app_label, model_admin.opts.model_name
        view = model_admin.admin_site.admin_view(
            lambda request: self.audience_count_view(model_admin, request))
        return [path("audience-count/", view, name=f"{info[0]}_{info[1]}_audience_count")]

    @staticmethod
    def audience_count_view(model_admin, request):
        """``{"count": n}`` or ``{"error": "...", "position": p}`` for ``?expr=``."""
        if not model_admin.has_view_or_change_permission(request):
            raise PermissionDenied
        expression = request.GET.get(EXPR, "").strip()
        if not expression:
            return JsonResponse({"count": None})
        try:
            return JsonResponse({"count": count_matching(expression)})
        except SegmentError as error:
            return JsonResponse({"error": error.message, "position": error.position},
                                status=400)

    def changelist_context(self, request, model_admin) -> dict:
        expression = request.GET.get(EXPR, "")
        context = {
            "audience_expr": expression,
            "audience_hidden": [(k, v) for k, v in request.GET.items() if k not in (EXPR, "p")],
            "audience_count_url": reverse(
                f"admin:{model_admin.opts.app_label}_{model_admin.opts.model_name}"
                "_audience_count"),
        }
        if expression.strip():
            try:
                parse(expression)
            except SegmentError as error:
                context["audience_error"] = error
        # The vocabulary to click into the box, and where “Save as segment” goes.
        context["audience_vocabulary"] = [
            {"dimension": dimension, "tags": [t for t in tags if not t.is_archived]}
            for dimension, tags in self._vocabulary(request).values()
            if any(not t.is_archived for t in tags)]
        if request.user.has_perm("audiences.add_segment"):
            context["segment_add_url"] = reverse("admin:audiences_segment_add")
        return context

    def actions(self, request, model_admin) -> dict:
        if not may_manage_tags(request.user):
            return {}
        return {"manage_tags": (manage_tags, "manage_tags", _("Manage tags (add and remove) …"))}


def may_manage_tags(user) -> bool:
    """Bulk tag changes are a marketer's job: the model-wide right to apply tags, or the
    right to start bulk operations. An agent's grants on a few dimensions are for the
    contact page, not for changing hundreds of contacts at once."""
    if not (user.is_active and user.is_staff):
        return False
    return (user.is_superuser or user.has_perm(f"tagging.{APPLY}")
            or user.has_perm("audiences.add_bulkoperation"))


def manage_tags(model_admin, request, queryset):
    """Choose tags → see how many gain and lose each → apply (now or on a worker)."""
    select_across = request.POST.get("select_across") == "1"
    step = request.POST.get("tw_step", "")
    form = ManageTagsForm(request.POST if step else None, user=request.user)
    if select_across and _expression_only(request):
        # All matches of the expression: its ids straight from the tag bitmaps.
        with contextlib.suppress(SegmentError):
            queryset = ids_matching(request.GET[EXPR])
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts, "title": _("Manage tags"), "form": form,
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": "1" if select_across else "0",
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    if step and form.is_valid():
        add, remove = list(form.cleaned_data["add"]), list(form.cleaned_data["remove"])
        try:
            preview = bulk_preview(contacts=queryset, add=add, remove=remove,
                                   actor=request.user)
            if step == "apply":
                bulk = bulk_operation_start(
                    contacts=queryset, add=add, remove=remove, actor=request.user,
                    selection=_selection_text(request, select_across, preview.total),
                    preview=preview,
                )
                return _report_bulk(model_admin, request, bulk)
        except (PermissionDenied, TagChangeError, SegmentError) as error:
            model_admin.message_user(request, str(error), messages.ERROR)
            context["refused"] = str(error)
        else:
            context.update(preview=preview, confirm=True, total=preview.total,
                           no_effect=[e.tag.name for e in preview.effects
                                      if not e.gain and not e.lose and not e.replaced])
            return TemplateResponse(request, "admin/audiences/manage_tags.html", context)
    # The first step: the selection's size and, per tag, how many of it hold the tag.
    tags = list(form.pickable)
    try:
        counted = bulk_preview(contacts=queryset, add=[], remove=tags, actor=request.user)
    except (PermissionDenied, TagChangeError):
        counted = None
    holders = {e.tag.pk: e.lose for e in counted.effects} if counted else {}
    total = counted.total if counted else (len(queryset) if isinstance(queryset, list)
                                           else queryset.count())
    context.update(total=total, groups=_chip_groups(form, holders, total))
    return TemplateResponse(request, "admin/audiences/manage_tags.html", context)


def _report_bulk(model_admin, request, bulk: BulkOperation):
    if bulk.status == BulkStatus.DONE:
        model_admin.message_user(request, ngettext(
            "Tags changed on %(n)d contact: %(a)d added, %(r)d removed.",
            "Tags changed on %(n)d contacts: %(a)d added, %(r)d removed.", bulk.total,
        ) % {"n": bulk.total, "a": bulk.added, "r": bulk.removed + bulk.replaced},
            messages.SUCCESS)
        return None
    return redirect("admin:audiences_bulkoperation_change", bulk.pk)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "expression", "count_display", "counted_at", "owner", "open_link"]
    search_fields = ["name", "expression", "description"]
    readonly_fields = ["count", "counted_at", "owner"]
    fields = ["name", "expression", "description", "owner", "count", "counted_at"]
    actions = ["refresh_counts"]

    @admin.display(description=gettext_lazy("contacts"), ordering="count")
    def count_display(self, obj: Segment):
        return "—" if obj.count is None else f"{obj.count:,}"

    @admin.display(description=gettext_lazy("open"))
    def open_link(self, obj: Segment) -> str:
        url = reverse("admin:crm_contact_changelist") + "?" + urlencode({EXPR: obj.expression})
        return format_html('<a href="{}">{}</a>', url, _("open contacts in this segment"))

    def save_model(self, request, obj, form, change):
        if not obj.owner_id:
            obj.owner = request.user
        super().save_model(request, obj, form, change)
        segment_counts_refresh(segments=Segment.objects.filter(pk=obj.pk))

    @admin.action(description=gettext_lazy("Refresh count"))
    def refresh_counts(self, request, queryset):
        n = segment_counts_refresh(segments=queryset)
        self.message_user(request, ngettext("Counted %(n)d segment.", "Counted %(n)d segments.",
                                            n) % {"n": n}, messages.SUCCESS)


@admin.register(BulkOperation)
class BulkOperationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "status", "progress_bar", "total", "added", "removed",
                    "replaced", "expression"]
    list_filter = ["status"]
    list_select_related = ["actor"]
    change_form_template = "admin/audiences/bulk_operation.html"
    readonly_fields = ["actor", "created_at", "started_at", "finished_at", "status",
                       "expression", "tag_names", "preview_table", "total", "processed",
                       "added", "removed", "replaced", "error", "undone_at", "undone_by"]
    fields = readonly_fields
    actions = ["undo"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # a record of what happened: read, followed and undone, never edited

    @admin.display(description=gettext_lazy("preview"))
    def preview_table(self, obj: BulkOperation) -> str:
        """What the preview promised, per tag — a table, not the stored JSON."""
        rows = (obj.preview or {}).get("tags", [])
        if not rows:
            return "—"
        return format_html(
            '<table class="tw-preview-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "</tr></thead><tbody>{}</tbody></table>", _("Tag"), _("would gain it"),
            _("would lose it"), format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                                 ((r.get("tag", ""), r.get("gain", 0),
                                                   r.get("lose", 0)) for r in rows)))

    def has_delete_permission(self, request, obj=None):
        return False

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        # The undo button for its owner and tag administrators; the others read why not.
        if obj is not None:
            context["undo_refused"] = undo_refusal_for(
                request.user, obj.actor_id, undo_refusal("bulk"), bulk_operation_tags(obj))
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def has_view_permission(self, request, obj=None):
        # Whoever started an operation may watch its progress and undo it.
        own = obj is not None and obj.actor_id == request.user.pk
        return own or super().has_view_permission(request, obj)

    @admin.display(description=gettext_lazy("tags"))
    def tag_names(self, obj: BulkOperation) -> str:
        names = dict(Tag.objects.filter(pk__in=[*obj.add_tag_ids, *obj.remove_tag_ids])
                     .values_list("pk", "name"))
        return "; ".join(filter(None, [
            _("add: %(t)s") % {"t": ", ".join(names.get(i, "?") for i in obj.add_tag_ids)}
            if obj.add_tag_ids else "",
            _("remove: %(t)s") % {"t": ", ".join(names.get(i, "?") for i in obj.remove_tag_ids)}
            if obj.remove_tag_ids else ""]))

    @admin.display(description=gettext_lazy("progress"))
    def progress_bar(self, obj: BulkOperation) -> str:
        return format_html('<progress max="100" value="{}"></progress> {}%', obj.percent,
                           obj.percent)

    def get_urls(self):
        return [
            path("<int:pk>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="audiences_bulkoperation_progress"),
            path("<int:pk>/undo/", self.admin_site.admin_view(self.undo_view),
                 name="audiences_bulkoperation_undo"),
            *super().get_urls(),
        ]

    def progress_view(self, request, pk: int):
        bulk = get_object_or_404(BulkOperation, pk=pk)
        if not self.has_view_permission(request, bulk):
            raise PermissionDenied
        return JsonResponse({
            "status": bulk.status, "status_display": bulk.get_status_display(),
            "processed": bulk.processed, "total": bulk.total, "percent": bulk.percent,
            "added": bulk.added, "removed": bulk.removed + bulk.replaced, "error": bulk.error,
            "finished": bulk.status not in (BulkStatus.PENDING, BulkStatus.RUNNING),
        })

    def undo_view(self, request, pk: int):
        bulk = get_object_or_404(BulkOperation, pk=pk)
        if request.method != "POST" or not self.has_view_permission(request, bulk):
            raise PermissionDenied
        self._undo(request, [bulk])
        return redirect("admin:audiences_bulkoperation_change", bulk.pk)

    @admin.action(description=gettext_lazy("Undo these bulk operations"))
    def undo(self, request, queryset):
        self._undo(request, list(queryset))

    def _undo(self, request, bulks: list[BulkOperation]) -> None:
        undone = 0
        for bulk in bulks:
            try:
                result = bulk_operation_undo(bulk=bulk, actor=request.user)
            except PermissionDenied as error:
                self.message_user(request, str(error), messages.ERROR)
                return
            if result is not None:
                undone += 1
        if undone:
            self.message_user(request, ngettext(
                "Undid %(n)d bulk operation.", "Undid %(n)d bulk operations.", undone)
                % {"n": undone}, messages.SUCCESS)
        else:
            self.message_user(request, _("Nothing to undo: already undone."), messages.INFO)
