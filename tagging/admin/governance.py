"""Admin for tag governance: define rights, vocabulary rules, archive/merge, version log.

Written as mixins added to the bases of the admin classes in ``tagging/admin.py``;
every write goes through ``tagging.vocabulary`` so that rights, rules and the
tag version log live in one place.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from import_export import fields, resources
from import_export.admin import ExportMixin

from tagging.models import Dimension, Tag, TagVersion
from tagging.permissions import (
    can_archive_dimension,
    can_archive_dimensions_at_all,
    can_define,
    can_define_any,
    definable_dimension_ids,
    ensure_can_archive_dimensions,
    ensure_can_define,
)
from tagging.selectors import tag_weekly_changes
from tagging.vocabulary import (
    NearTwinWarning,
    Reference,
    VocabularyError,
    dimension_archive,
    dimension_delete,
    dimension_references,
    dimension_restore,
    dimension_save,
    tag_archive,
    tag_delete,
    tag_merge,
    tag_references,
    tag_restore,
    tag_save,
)


class VocabularyForm(forms.ModelForm):
    """A tag or dimension form that asks for a reason and for near-twin confirmation."""

    confirm_near_twin = forms.BooleanField(
        label=gettext_lazy("Confirm near-twin"), required=False,
        help_text=gettext_lazy("Tick to keep a name that looks like an existing one; give the "
                               "reason below."),
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason"), required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=gettext_lazy("Why this change? Required for renames and for near-twins; "
                               "kept in the tag version log."),
    )
    actor = None  # set per request by the admin's get_form
    save_service = None

    def _post_clean(self):
        super()._post_clean()
        if self.errors:
            return
        adding = self.instance.pk is None
        try:
            # Dry run of the service's checks: it raises before writing anything.
            with transaction.atomic():
                type(self).save_service(**self.service_kwargs())
                transaction.set_rollback(True)
        except NearTwinWarning as exc:
            self.add_error("name", str(exc))
        except PermissionDenied as exc:
            self.add_error(None, str(exc))
        except VocabularyError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        finally:
            if adding:  # the dry run was rolled back; the real save inserts again
                self.instance.pk = None
                self.instance._state.adding = True

    def service_kwargs(self) -> dict:
        raise NotImplementedError


class TagForm(VocabularyForm):
    save_service = staticmethod(tag_save)

    class Meta:
        model = Tag
        fields = ["dimension", "name", "colour", "symbol", "description", "kind",
                  "lifetime_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("dimension")
        if field is not None:
            # No new tags in an archived dimension; a tag of one still shows its own.
            field.queryset = field.queryset.filter(
                Q(is_archived=False) | Q(pk=self.instance.dimension_id))

    def service_kwargs(self) -> dict:
        return {"tag": self.instance, "actor": self.actor,
                "reason": self.cleaned_data.get("reason", ""),
                "near_twins_confirmed": self.cleaned_data.get("confirm_near_twin", False)}


class DimensionForm(VocabularyForm):
    save_service = staticmethod(dimension_save)

    class Meta:
        model = Dimension
        fields = ["name", "colour", "description", "order", "single_choice"]

    def service_kwargs(self) -> dict:
        return {"dimension": self.instance, "actor": self.actor,
                "reason": self.cleaned_data.get("reason", ""),
                "near_twins_confirmed": self.cleaned_data.get("confirm_near_twin", False)}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Reason"), widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=gettext_lazy("Kept in the tag version log."),
    )


class MergeForm(ReasonForm):
    target = forms.ModelChoiceField(
        label=gettext_lazy("Merge into"), queryset=Tag.objects.filter(is_archived=False),
        help_text=gettext_lazy("The tag that stays; the selected tags are archived."),
    )


class _VocabularyAdminMixin:
    """Shared by the tag and dimension admins: service-backed save and a reasoned delete."""

    delete_confirmation_template = "tagging/admin/delete_confirmation.html"

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def save_model(self, request, obj, form, change):
        if isinstance(form, VocabularyForm):
            form.save_service(**form.service_kwargs())
        else:  # a row of the changelist (list_editable): no reason asked, still logged
            self.save_service(**{self.opts.model_name: obj, "actor": request.user})

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Django's bulk delete collects every related row (millions of
        # assignments) and bypasses the reason; delete one at a time instead.
        actions.pop("delete_selected", None)
        return actions

    def references(self, obj) -> list[Reference]:
        raise NotImplementedError

    def delete_with_reason(self, request, obj, reason: str) -> str:
        raise NotImplementedError

    def may_archive_instead(self, request, obj) -> bool:
        raise NotImplementedError

    def archive_instead(self, request, obj, reason: str) -> str:
        raise NotImplementedError

    def delete_view(self, request: HttpRequest, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request, obj):
            raise PermissionDenied
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                if "_archive" in request.POST and self.may_archive_instead(request, obj):
                    self.message_user(request, self.archive_instead(request, obj, reason),
                                      messages.SUCCESS)
                    return HttpResponseRedirect(reverse(
                        f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                        args=[obj.pk]))
                message = self.delete_with_reason(request, obj, reason)
            except (VocabularyError, PermissionDenied) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Delete %(name)s?") % {"name": obj},
            "subtitle": None,
            "object": obj,
            "object_name": str(self.opts.verbose_name),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "references": self.references(obj),
            "can_archive": self.may_archive_instead(request, obj),
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.delete_confirmation_template, context)


class TagGovernanceMixin(_VocabularyAdminMixin):
    """Tag admin: only users with the define right on a dimension change its tags."""

    form = TagForm
    save_service = staticmethod(tag_save)
    change_form_template = "tagging/admin/tag_change_form.html"
    actions = ["archive_selected", "restore_selected", "merge_selected"]

    # --- rights -------------------------------------------------------------
    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or can_define_any(request.user)

    def has_add_permission(self, request):
        return can_define_any(request.user)

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return can_define_any(request.user)
        return can_define(request.user, obj.dimension)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def has_define_permission(self, request):
        return can_define_any(request.user)

    def get_readonly_fields(self, request, obj=None):
        # Archiving has its own actions (with a reason); the form only shows the state.
        extra = ["is_archived"] if obj is not None else []
        return [*super().get_readonly_fields(request, obj), *extra]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "dimension":
            ids = definable_dimension_ids(request.user)
            if ids is not None:
                kwargs["queryset"] = Dimension.objects.filter(pk__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # --- pages --------------------------------------------------------------
    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context["weekly_changes"] = tag_weekly_changes(obj)
            extra_context["versions_url"] = (
                reverse("admin:tagging_tagversion_changelist")
                + f"?object_type=tag&object_id={obj.pk}"
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def references(self, obj: Tag) -> list[Reference]:
        return tag_references(obj)

    def may_archive_instead(self, request, obj: Tag) -> bool:
        return not obj.is_archived

    def archive_instead(self, request, obj: Tag, reason: str) -> str:
        tag_archive(tag=obj, actor=request.user, reason=reason)
        return _("“%(tag)s” was archived.") % {"tag": obj.name}

    def delete_with_reason(self, request, obj: Tag, reason: str) -> str:
        removed = tag_delete(tag=obj, actor=request.user, reason=reason)
        return ngettext("“%(tag)s” was deleted; %(n)d contact lost it.",
                        "“%(tag)s” was deleted; %(n)d contacts lost it.", removed) % {
            "tag": obj.name, "n": removed}

    # --- actions ------------------------------------------------------------
    def _intermediate(self, request, queryset, form, action: str, title: str):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "queryset": queryset,
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "selected_label": _("Selected tags:"),
        }
        return TemplateResponse(request, "tagging/admin/tag_action_confirmation.html", context)

    def _refuse_unless_definable(self, request, tags) -> bool:
        try:
            ensure_can_define(request.user, {t.dimension for t in tags})
        except PermissionDenied as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        return True

    @admin.action(description=gettext_lazy("Archive selected tags"), permissions=["define"])
    def archive_selected(self, request, queryset):
        return self._archive_or_restore(request, queryset, archive=True)

    @admin.action(description=gettext_lazy("Restore selected tags"), permissions=["define"])
    def restore_selected(self, request, queryset):
        return self._archive_or_restore(request, queryset, archive=False)

    def _archive_or_restore(self, request, queryset, *, archive: bool):
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            title = _("Archive tags") if archive else _("Restore tags")
            return self._intermediate(request, queryset, form,
                                      "archive_selected" if archive else "restore_selected",
                                      title)
        tags = list(queryset.select_related("dimension"))
        if not self._refuse_unless_definable(request, tags):
            return None
        service = tag_archive if archive else tag_restore
        try:
            with transaction.atomic():
                done = sum(service(tag=t, actor=request.user,
                                   reason=form.cleaned_data["reason"]) for t in tags)
        except (VocabularyError, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        message = (ngettext("%(n)d tag archived.", "%(n)d tags archived.", done) if archive
                   else ngettext("%(n)d tag restored.", "%(n)d tags restored.", done))
        self.message_user(request, message % {"n": done}, messages.SUCCESS)
        return None

    @admin.action(description=gettext_lazy("Merge selected tags into another tag"),
                  permissions=["define"])
    def merge_selected(self, request, queryset):
        tags = list(queryset.select_related("dimension"))
        form = MergeForm(request.POST if "confirm" in request.POST else None)
        form.fields["target"].queryset = Tag.objects.filter(is_archived=False).exclude(
            pk__in=[t.pk for t in tags]).select_related("dimension")
        if not form.is_valid():
            return self._intermediate(request, queryset, form, "merge_selected",
                                      _("Merge tags"))
        target = form.cleaned_data["target"]
        if not self._refuse_unless_definable(request, [*tags, target]):
            return None
        try:
            with transaction.atomic():
                results = [tag_merge(source=t, target=target, actor=request.user,
                                     reason=form.cleaned_data["reason"]) for t in tags]
        except (VocabularyError, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        moved = sum(r.moved for r in results)
        self.message_user(
            request,
            ngettext("%(n)d tag merged into “%(target)s”; %(moved)d contacts received it.",
                     "%(n)d tags merged into “%(target)s”; %(moved)d contacts received it.",
                     len(results)) % {"n": len(results), "target": target.name, "moved": moved},
            messages.SUCCESS,
        )
        return None


class DimensionGovernanceMixin(_VocabularyAdminMixin):
    """Dimension admin: create, rename, recolour, archive, restore and delete, all logged."""

    form = DimensionForm
    save_service = staticmethod(dimension_save)
    change_form_template = "tagging/admin/dimension_change_form.html"
    actions = ["archive_selected", "restore_selected"]

    def has_archive_permission(self, request) -> bool:
        return can_archive_dimensions_at_all(request.user)

    def get_urls(self):
        return [
            path("<path:object_id>/archive/", self.admin_site.admin_view(self.archive_view),
                 name="tagging_dimension_archive"),
            path("<path:object_id>/restore/", self.admin_site.admin_view(self.restore_view),
                 name="tagging_dimension_restore"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        extra_context = {
            **(extra_context or {}),
            "can_archive_dimension": obj is not None and can_archive_dimension(request.user,
                                                                               obj),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- delete -------------------------------------------------------------
    def references(self, obj: Dimension) -> list[Reference]:
        return dimension_references(obj)

    def delete_with_reason(self, request, obj: Dimension, reason: str) -> str:
        tags = Tag.objects.filter(dimension=obj).count()
        removed = dimension_delete(dimension=obj, actor=request.user, reason=reason)
        if not tags:
            return _("The dimension “%(name)s” was deleted.") % {"name": obj.name}
        return ngettext(
            "The dimension “%(name)s” was deleted with %(n)d tag; %(removed)d tag holdings "
            "were removed.",
            "The dimension “%(name)s” was deleted with %(n)d tags; %(removed)d tag holdings "
            "were removed.", tags) % {"name": obj.name, "n": tags, "removed": removed}

    def may_archive_instead(self, request, obj: Dimension) -> bool:
        return not obj.is_archived and can_archive_dimension(request.user, obj)

    def archive_instead(self, request, obj: Dimension, reason: str) -> str:
        result = dimension_archive(dimension=obj, actor=request.user, reason=reason)
        return self._archived_message(obj, result.tags)

    # --- archive and restore ------------------------------------------------
    @staticmethod
    def _archived_message(obj: Dimension, tags: list[str]) -> str:
        return ngettext("“%(name)s” was archived with %(n)d tag.",
                        "“%(name)s” was archived with %(n)d tags.", len(tags)) % {
            "name": obj.name, "n": len(tags)}

    def _archive_page(self, request, object_id, *, archive: bool):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not can_archive_dimension(request.user, obj):
            raise PermissionDenied
        form = ReasonForm(request.POST or None)
        if not archive:
            form.fields["reason"].required = False
        change_url = reverse("admin:tagging_dimension_change", args=[obj.pk])
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                if archive:
                    result = dimension_archive(dimension=obj, actor=request.user, reason=reason)
                    message = self._archived_message(obj, result.tags)
                else:
                    result = dimension_restore(dimension=obj, actor=request.user, reason=reason)
                    message = ngettext("“%(name)s” was restored with %(n)d tag.",
                                       "“%(name)s” was restored with %(n)d tags.",
                                       len(result.tags)) % {"name": obj.name,
                                                            "n": len(result.tags)}
            except (VocabularyError, PermissionDenied) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                if not result.changed:
                    message = (_("“%(name)s” was archived already.") if archive
                               else _("“%(name)s” is not archived.")) % {"name": obj.name}
                self.message_user(request, message, messages.SUCCESS if result.changed
                                  else messages.WARNING)
                return HttpResponseRedirect(change_url)
        tags = Tag.objects.filter(dimension=obj)
        context = {
            **self.admin_site.each_context(request),
            "title": (_("Archive %(name)s?") if archive else _("Restore %(name)s?"))
            % {"name": obj},
            "subtitle": None,
            "object": obj,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "archive": archive,
            # Counts only: a dimension's tags are few, its holdings may be millions.
            "tags_affected": (tags.filter(is_archived=False) if archive
                              else tags.filter(archived_with_dimension=True)).count(),
            "tags_kept": tags.filter(is_archived=True, archived_with_dimension=False).count(),
            "holdings": dimension_references(obj) if archive else [],
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "tagging/admin/dimension_archive.html", context)

    def archive_view(self, request, object_id):
        return self._archive_page(request, object_id, archive=True)

    def restore_view(self, request, object_id):
        return self._archive_page(request, object_id, archive=False)

    @admin.action(description=gettext_lazy("Archive selected dimensions and their tags"),
                  permissions=["archive"])
    def archive_selected(self, request, queryset):
        return self._archive_or_restore(request, queryset, archive=True)

    @admin.action(description=gettext_lazy("Restore selected dimensions and their tags"),
                  permissions=["archive"])
    def restore_selected(self, request, queryset):
        return self._archive_or_restore(request, queryset, archive=False)

    def _archive_or_restore(self, request, queryset, *, archive: bool):
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not archive:
            form.fields["reason"].required = False
        if not (form.is_bound and form.is_valid()):
            context = {
                **self.admin_site.each_context(request),
                "title": _("Archive dimensions") if archive else _("Restore dimensions"),
                "opts": self.opts,
                "queryset": queryset,
                "form": form,
                "action": "archive_selected" if archive else "restore_selected",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "selected_label": _("Selected dimensions (their tags follow them):"),
            }
            return TemplateResponse(request, "tagging/admin/tag_action_confirmation.html",
                                    context)
        dimensions = list(queryset)
        service = dimension_archive if archive else dimension_restore
        try:
            ensure_can_archive_dimensions(request.user, dimensions)
            with transaction.atomic():
                results = [service(dimension=d, actor=request.user,
                                   reason=form.cleaned_data["reason"]) for d in dimensions]
        except (VocabularyError, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        done = sum(r.changed for r in results)
        tags = sum(len(r.tags) for r in results)
        message = (ngettext("%(n)d dimension archived with %(tags)d tags.",
                            "%(n)d dimensions archived with %(tags)d tags.", done) if archive
                   else ngettext("%(n)d dimension restored with %(tags)d tags.",
                                 "%(n)d dimensions restored with %(tags)d tags.", done))
        self.message_user(request, message % {"n": done, "tags": tags}, messages.SUCCESS)
        return None


class TagVersionResource(resources.ModelResource):
    actor = fields.Field(attribute="actor__username", column_name="by")

    class Meta:
        model = TagVersion
        fields = ["id", "at", "actor", "action", "object_type", "object_id", "object_name",
                  "changes", "reason"]
        export_order = ["id", "at", "actor", "action", "object_type", "object_id",
                        "object_name", "changes", "reason"]


class VersionLogMixin(ExportMixin):
    """The tag version log: filter by action, object, person and date; export CSV/XLSX."""

    resource_classes = [TagVersionResource]

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), ("actor", admin.RelatedOnlyFieldListFilter)]

    def lookup_allowed(self, lookup, value, request=None):
        # The tag page links to its own entries with ?object_type=tag&object_id=N.
        return lookup == "object_id" or super().lookup_allowed(lookup, value, request)

    def has_export_permission(self, request):
        return self.has_view_permission(request)
