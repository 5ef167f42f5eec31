"""Customers in the admin: contacts, their events, API tokens.

The contact admin is one class composed of parts: each capability (tags,
audiences, exports, insight …) registers a ``ContactAdminPart`` from its
``AppConfig.ready()`` and adds its columns, filters, actions, pages and panels
through the part's hooks, so this app never imports the apps built on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from crm.models import ApiScope, ApiToken, Contact, Erasure, Event, Job, RetentionPeriod
from crm.privacy import (
    ErasureError,
    contact_erase,
    contact_export,
    erasure_plan,
    is_erased,
    privacy_parts,
    retentions,
)
from crm.selectors import contacts_search
from crm.timeline import Cursor, timeline_page
from crm.tokens import (
    ApiTokenError,
    api_token_check,
    api_token_issue,
    api_tokens_revoke,
    dimension_catalog,
    dimension_names,
)

CONSENT_FIELDS = ["consent_status", "consent_source", "consent_at", "is_blocked"]


class ContactAdminPart:
    """One capability's share of the contact admin.

    Every hook receives what the parts registered before it produced and
    returns it, changed or not; the defaults change nothing. Templates named in
    ``changelist_includes`` render above the list, those in
    ``change_form_includes`` above the contact's fields, with the context the
    matching ``*_context`` hook returns.
    """

    changelist_includes: Sequence[str] = ()
    change_form_includes: Sequence[str] = ()

    def queryset(self, request, queryset):
        return queryset

    def list_display(self, request, columns: list) -> list:
        return columns

    def list_filter(self, request, filters: list) -> list:
        return filters

    def readonly_fields(self, request, obj, fields: list) -> list:
        return fields

    def actions(self, request, model_admin) -> dict:
        """``{name: (function(model_admin, request, queryset), name, description)}``."""
        return {}

    def urls(self, model_admin) -> list:
        return []

    def paginator(self, request, paginator: ContactPaginator) -> ContactPaginator:
        return paginator

    def changelist_context(self, request, model_admin) -> dict:
        return {}

    def change_form_context(self, request, model_admin, obj: Contact) -> dict:
        return {}


class ContactAdminParts:
    """The registered parts, in registration order (app order in ``INSTALLED_APPS``)."""

    def __init__(self):
        self._parts: dict[type, ContactAdminPart] = {}

    def register(self, part: ContactAdminPart) -> None:
        """Add ``part``; registering a part of the same class again replaces it."""
        self._parts[type(part)] = part

    def __iter__(self):
        return iter(list(self._parts.values()))


contact_admin_parts = ContactAdminParts()


class ContactPaginator(Paginator):
    """Counts exactly when filtered; estimates the unfiltered total from table statistics.

    An exact ``COUNT(*)`` of a million contacts on every page view is the one
    query that grows with the base; the planner's row estimate is free. A part
    that already knows the matching ids (ascending) sets ``matches``: the count
    is their number and a page takes its ids straight from them, newest first.
    """

    matches: Sequence[int] | None = None

    @cached_property
    def count(self) -> int:
        if self.matches is not None:
            return len(self.matches)
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [Contact._meta.db_table])
                estimate = cursor.fetchone()[0]
            if estimate and estimate > 10_000:
                return estimate
        return super().count

    def page(self, number):
        if self.matches is None:
            return super().page(number)
        number = self.validate_number(number)
        top = len(self.matches) - (number - 1) * self.per_page
        ids = list(self.matches[max(top - self.per_page, 0):top])
        return self._get_page(self.object_list.filter(pk__in=ids), number, self)


class CountryFilter(admin.SimpleListFilter):
    """Country filter whose choices are cached: the stock one runs ``SELECT DISTINCT country``
    over every contact on every page view (400 ms at a million contacts)."""

    title = _("country")
    parameter_name = "country"
    cache_key, cache_seconds = "tagwerk:contacts:countries", 600

    def lookups(self, request, model_admin):
        countries = cache.get(self.cache_key)
        if countries is None:
            countries = list(Contact.objects.order_by("country").values_list("country", flat=True)
                             .distinct())
            cache.set(self.cache_key, countries, self.cache_seconds)
        return [(c, c) for c in countries if c]

    def queryset(self, request, queryset):
        return queryset.filter(country=self.value()) if self.value() else queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by services (logs, audit trails): shown, never added or edited
    in the admin; ``deletable`` says whether staff may delete them."""

    deletable = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["phone", "display_name", "consent_status", "country", "last_interaction_at"]
    list_display_links = ["phone", "display_name"]
    list_filter = ["consent_status", "is_blocked", CountryFilter, "gender"]
    search_fields = ["phone"]  # the real search is get_search_results below
    search_help_text = _("A phone number in any writing (+49 170 …, 0170-…, 0049…) or the "
                         "beginning of a first or last name.")
    readonly_fields = [
        "country", "purchase_count", "total_spent", "first_purchase_at", "last_purchase_at",
        "last_interaction_at", "last_read_at", "last_reply_at", "joined_at", "created_at",
        "updated_at",
    ]
    show_full_result_count = False
    # Facet counts run one aggregate per sidebar choice over the whole base: minutes at 1M.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    timeline_per_page = 25
    fieldsets = [
        (None, {"fields": ["phone", ("salutation", "first_name", "last_name"), "external_label"]}),
        (_("Profile"), {"fields": [("gender", "birth_date"), ("language", "country", "city"),
                                   "occupation", "notes", "attributes"]}),
        (_("Consent"), {"fields": [("consent_status", "consent_source", "consent_at"),
                                   "is_blocked"]}),
        (_("Activity"), {"fields": [("purchase_count", "total_spent"),
                                    ("first_purchase_at", "last_purchase_at"),
                                    ("last_interaction_at", "last_read_at", "last_reply_at"),
                                    ("joined_at", "created_at", "updated_at")]}),
    ]

    @admin.display(description=_("name"), ordering="last_name")
    def display_name(self, obj: Contact) -> str:
        return obj.display_name

    def get_search_results(self, request, queryset, search_term):
        return contacts_search(search_term, queryset), False

    @admin.display(description=_("attributes"))
    def attributes_display(self, obj: Contact) -> str:
        """Custom facts as a short list of “name: value”, never as raw JSON."""
        if not obj.attributes:
            return _("none")
        if not isinstance(obj.attributes, dict):
            return str(obj.attributes)
        return format_html('<dl class="tw-attributes">{}</dl>', format_html_join(
            "", "<dt>{}</dt><dd>{}</dd>", sorted((str(k), str(v))
                                                  for k, v in obj.attributes.items())))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        # Custom facts are read here; imports and the API write them.
        return [(name, {**options, "fields": [
            "attributes_display" if f == "attributes" else f for f in options["fields"]]})
            for name, options in fieldsets]

    # --- the timeline ------------------------------------------------------------

    def timeline_view(self, request, object_id):
        """One page of the contact's timeline (HTML fragment) after the cursor ``?before=``
        (a malformed one gives the first page)."""
        contact = self.get_object(request, object_id)
        if contact is None or not self.has_view_permission(request, contact):
            raise PermissionDenied
        before = Cursor.parse(request.GET.get("before", ""))
        return TemplateResponse(request, "admin/crm/contact/timeline.html",
                                self._timeline_context(request, contact, before))

    def _timeline_context(self, request, contact, before=None) -> dict:
        page = timeline_page(contact, before=before, limit=self.timeline_per_page)
        more_url = ""
        if page.next_before is not None:
            more_url = reverse("admin:crm_contact_timeline", args=[contact.pk]) + "?" + \
                urlencode({"before": page.next_before.encode()})
        return {"timeline": page.entries, "timeline_more_url": more_url}

    # --- the parts' hooks ---------------------------------------------------------

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        for part in contact_admin_parts:
            queryset = part.queryset(request, queryset)
        return queryset

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        for part in contact_admin_parts:
            columns = part.list_display(request, columns)
        return columns

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        for part in contact_admin_parts:
            filters = part.list_filter(request, filters)
        return filters

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("attributes_display")
        if not request.user.has_perm("crm.change_consent"):
            fields += [f for f in CONSENT_FIELDS if f not in fields]
        for part in contact_admin_parts:
            fields = part.readonly_fields(request, obj, fields)
        return fields

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.actions is None or IS_POPUP_VAR in request.GET:
            return actions
        if self.has_erase_permission(request):
            actions["erase_selected"] = self.get_action("erase_selected")
        for part in contact_admin_parts:
            actions.update(part.actions(request, self))
        return actions

    def get_urls(self):
        timeline = path("<path:object_id>/timeline/",
                        self.admin_site.admin_view(self.timeline_view),
                        name="crm_contact_timeline")
        privacy = [
            path("<path:object_id>/privacy/export/",
                 self.admin_site.admin_view(self.data_export_view),
                 name="crm_contact_data_export"),
            path("privacy/erase/", self.admin_site.admin_view(self.erase_view),
                 name="crm_contact_erase"),
        ]
        return [timeline, *privacy,
                *(url for part in contact_admin_parts for url in part.urls(self)),
                *super().get_urls()]

    # --- privacy: access and erasure (crm.privacy, docs/privacy.md) --------------------

    @staticmethod
    def may_export_data(request) -> bool:
        user = request.user
        return user.has_perm("crm.view_contact") and (
            user.has_perm("crm.export_contacts") or user.has_perm("crm.erase_contact"))

    def has_erase_permission(self, request) -> bool:
        """Tag administrators (crm.erase_contact) and superusers."""
        return request.user.has_perm("crm.erase_contact")

    def data_export_view(self, request, object_id):
        """Everything held about the contact, readable; ``?format=json`` downloads it."""
        contact = self.get_object(request, object_id)
        if contact is None or not self.may_export_data(request):
            raise PermissionDenied
        data = contact_export(contact)
        if request.GET.get("format") == "json":
            response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2),
                                    content_type="application/json; charset=utf-8")
            response["Content-Disposition"] = (
                f'attachment; filename="contact-{contact.pk}-data.json"')
            return response
        sections = [(str(part.label), _rows(data.get(part.name))) for part in privacy_parts]
        return TemplateResponse(request, "admin/crm/contact/data_export.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "original": contact, "title": _("Data held about %(contact)s") % {
                "contact": contact}, "sections": sections,
            "exported_at": data["exported_at"]})

    @admin.action(description=_("Erase the selected contacts and all their data"),
                  permissions=["erase"])
    def erase_selected(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True)[:100])
        return HttpResponseRedirect(reverse("admin:crm_contact_erase") + "?" + urlencode(
            {"ids": ids}))

    def erase_view(self, request):
        """The confirmation page: per contact, what will go; POST with a reason erases."""
        if not self.has_erase_permission(request):
            raise PermissionDenied
        ids = [int(x) for x in (request.POST.get("ids") or request.GET.get("ids", "")).split(",")
               if x.strip().isdigit()]
        contacts = [c for c in Contact.objects.filter(pk__in=ids) if not is_erased(c)]
        if request.method == "POST" and request.POST.get("confirm") and contacts:
            reason = request.POST.get("reason", "").strip()
            done = 0
            for contact in contacts:
                try:
                    contact_erase(contact=contact, via="admin", actor=request.user,
                                  reason=reason)
                    done += 1
                except ErasureError as exc:
                    self.message_user(request, str(exc), messages.WARNING)
            self.message_user(request, ngettext(
                "%(n)d contact erased; only a salted hash of the number is kept.",
                "%(n)d contacts erased; only salted hashes of the numbers are kept.",
                done) % {"n": done})
            return HttpResponseRedirect(reverse("admin:crm_contact_changelist"))
        return TemplateResponse(request, "admin/crm/contact/erase_confirmation.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": _("Erase contacts"), "ids": ",".join(str(c.pk) for c in contacts),
            "plans": [(contact, erasure_plan(contact)) for contact in contacts]})

    def get_paginator(self, request, queryset, per_page, orphans=0,
                      allow_empty_first_page=True):
        paginator = ContactPaginator(queryset, per_page, orphans, allow_empty_first_page)
        for part in contact_admin_parts:
            paginator = part.paginator(request, paginator)
        return paginator

    def changelist_view(self, request, extra_context=None):
        context = {"part_includes": [t for p in contact_admin_parts for t in p.changelist_includes]}
        for part in contact_admin_parts:
            context.update(part.changelist_context(request, self))
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        if obj is not None and obj.pk:
            context["part_includes"] = [t for p in contact_admin_parts
                                        for t in p.change_form_includes]
            context.update(self._timeline_context(request, obj))
            context["privacy_export_url"] = (
                reverse("admin:crm_contact_data_export", args=[obj.pk])
                if self.may_export_data(request) else "")
            context["privacy_erase_url"] = (
                reverse("admin:crm_contact_erase") + "?" + urlencode({"ids": obj.pk})
                if self.has_erase_permission(request) and not is_erased(obj) else "")
            for part in contact_admin_parts:
                context.update(part.change_form_context(request, self, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "contact", "kind", "name", "amount", "currency", "product",
                    "source"]
    list_filter = ["kind", "source"]
    list_select_related = ["contact"]
    raw_id_fields = ["contact"]
    show_full_result_count = False
    date_hierarchy = "occurred_at"

    def has_change_permission(self, request, obj=None):
        return False  # append-only


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    """Read-only: who holds which long job and when it last showed life (crm.jobs writes
    it). Each job's own page (the import, the bulk operation, the rule's runs) shows its
    progress and report."""

    list_display = ["kind", "ref", "status", "attempts", "heartbeat_at", "holder", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["=ref"]
    ordering = ["-heartbeat_at"]


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=ApiScope.choices, initial=[ApiScope.EVENTS_WRITE],
        widget=forms.CheckboxSelectMultiple)
    dimensions = forms.TypedMultipleChoiceField(
        label=_("dimensions"), coerce=int, required=False, choices=(),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Whose tags the token may add and remove (tags:write, bulk:write)."))

    class Meta:
        model = ApiToken
        fields = ["name", "scopes", "dimensions", "all_dimensions", "rate_limit"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        catalog = dimension_catalog()
        self.fields["dimensions"].choices = catalog.choices() if catalog else []

    def clean(self):
        data = super().clean()
        try:
            api_token_check(scopes=data.get("scopes") or [],
                            dimensions=data.get("dimensions") or [],
                            all_dimensions=data.get("all_dimensions", False))
        except ApiTokenError:
            raise forms.ValidationError(
                _("A token with tags:write or bulk:write must name the dimensions it may change, "
                  "or be allowed all dimensions.")) from None
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "prefix", "scopes", "dimension_list", "rate_limit", "created_at",
                    "created_by", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    FIELDS = ["name", "scopes", "dimensions", "all_dimensions", "rate_limit"]

    def get_fields(self, request, obj=None):
        return self.FIELDS if obj is None else ["name", *self.readonly_fields, "scopes",
                                                "dimension_list", "rate_limit"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "scopes", "dimension_list"] if obj else []

    @admin.display(description=_("dimensions"))
    def dimension_list(self, obj: ApiToken) -> str:
        names = dimension_names(obj)
        return _("all") if names == ["*"] else ", ".join(names) or "—"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "rate_limit"])
            return
        obj.scopes, obj.created_by = form.cleaned_data["scopes"], request.user
        obj.dimensions = form.cleaned_data["dimensions"]
        raw = api_token_issue(token=obj)
        self.message_user(request, _(
            "Token “%(name)s” created. Copy it now — it is not shown again: %(token)s")
            % {"name": obj.name, "token": raw}, messages.WARNING)

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        count = api_tokens_revoke(tokens=queryset)
        self.message_user(request, ngettext("%(n)d token revoked.", "%(n)d tokens revoked.",
                                            count) % {"n": count})


def _rows(value) -> list[dict]:
    """A part's export as rows of (label, text) pairs for the readable page."""
    if not value:
        return []
    items = value if isinstance(value, list) else [value]
    return [[(str(k).replace("_", " "), _text(v)) for k, v in item.items()]
            if isinstance(item, dict) else [("", _text(item))] for item in items]


def _text(value) -> str:
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdmin):
    """The audit record of erasures: who, when, why; the number only as a salted hash."""

    list_display = ["erased_at", "via", "actor", "reason", "phone_hash"]
    list_filter = ["via"]
    readonly_fields = ["erased_at", "via", "actor", "reason", "phone_hash", "removed"]


class RetentionPeriodForm(forms.ModelForm):
    key = forms.ChoiceField(label=_("data"), choices=())

    class Meta:
        model = RetentionPeriod
        fields = ["key", "days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [(key, r.label) for key, r in retentions.items()]


@admin.register(RetentionPeriod)
class RetentionPeriodAdmin(admin.ModelAdmin):
    """How long each kind of data is kept; a kind without a row keeps the setting's default
    (PRIVACY_RETENTION_DAYS). Beat prunes daily."""

    form = RetentionPeriodForm
    list_display = ["label", "days", "protects"]
    list_display_links = ["label"]

    @admin.display(description=_("data"))
    def label(self, obj: RetentionPeriod) -> str:
        retention = retentions.get(obj.key)
        return str(retention.label) if retention else obj.key

    @admin.display(description=_("what pruning protects"))
    def protects(self, obj: RetentionPeriod) -> str:
        retention = retentions.get(obj.key)
        return str(retention.protects) if retention else ""
