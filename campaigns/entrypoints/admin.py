"""Admin: entry points with their link, QR code (PNG, SVG, printable A4/A6), history and export."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from campaigns.entrypoints import services
from campaigns.entrypoints.models import AdSource, Arrival, EntryPoint
from campaigns.entrypoints.selectors import entry_point_history, entry_points_overview
from crm.admin import ContactAdminPart
from crm.csvsafe import SafeWriter
from tagging.insight.charts import Series, line_chart


class EntryPointForm(forms.ModelForm):
    class Meta:
        model = EntryPoint
        fields = ["name", "code", "kind", "tags", "text", "consent", "consent_text",
                  "welcome_template", "headline_dimension", "active", "active_from",
                  "active_until"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["code"].required = False

    def clean_code(self) -> str:
        return services.code_normalize(self.cleaned_data.get("code", ""))

    def clean(self):
        data = super().clean()
        if data.get("consent") and not (data.get("consent_text") or "").strip():
            self.add_error("consent_text", _(
                "Writing can only count as opting in when the customer sees a consent text: "
                "write the text shown next to the QR code or link."))
        start, end = data.get("active_from"), data.get("active_until")
        if start and end and end < start:
            self.add_error("active_until", _("The end of the active period lies before its "
                                             "start."))
        return data

    def _post_clean(self):
        if not self.instance.code and not self.cleaned_data.get("code"):
            # Empty: made up before the model's own checks run.
            self.cleaned_data["code"] = services.code_generate()
            self.instance.code = self.cleaned_data["code"]
        super()._post_clean()


class AdSourceInline(admin.TabularInline):
    model = AdSource
    extra = 0
    fields = ["source_id", "note"]


@admin.register(EntryPoint)
class EntryPointAdmin(admin.ModelAdmin):
    form = EntryPointForm
    list_display = ["name", "code", "kind", "active", "chats", "new_contacts", "consented",
                    "downloads"]
    list_filter = ["active", "kind", "consent"]
    search_fields = ["name", "code"]
    filter_horizontal = ["tags"]
    inlines = [AdSourceInline]
    readonly_fields = ["link", "qr_code", "history_link", "welcome_campaign_link"]
    fieldsets = [
        (None, {"fields": ["name", "code", "kind", "tags", "active",
                           ("active_from", "active_until")]}),
        (_("Message and consent"), {"fields": ["text", "consent", "consent_text",
                                               "welcome_template", "welcome_campaign_link"]}),
        (_("Ads"), {"classes": ["collapse"], "fields": ["headline_dimension"]}),
        (_("Link and QR code"), {"fields": ["link", "qr_code", "history_link"]}),
    ]

    def get_queryset(self, request):
        return entry_points_overview(super().get_queryset(request))

    @admin.display(description=_("chats started"), ordering="n_chats")
    def chats(self, obj):
        return getattr(obj, "n_chats", 0)

    @admin.display(description=_("new contacts"), ordering="n_new")
    def new_contacts(self, obj):
        return getattr(obj, "n_new", 0)

    @admin.display(description=_("consented"), ordering="n_consented")
    def consented(self, obj):
        return getattr(obj, "n_consented", 0)

    def _url(self, name: str, obj: EntryPoint) -> str:
        return reverse(f"admin:entrypoints_entrypoint_{name}", args=[obj.pk])

    @admin.display(description=_("QR code"))
    def downloads(self, obj: EntryPoint) -> str:
        return format_html('<a href="{}">PNG</a> · <a href="{}">SVG</a> · <a href="{}">{}</a>',
                           self._url("png", obj), self._url("svg", obj),
                           self._url("print", obj), _("print"))

    @admin.display(description=_("link"))
    def link(self, obj: EntryPoint) -> str:
        if not obj.pk:
            return _("Save the entry point first.")
        try:
            url = services.entry_point_link(obj)
        except ImproperlyConfigured as exc:
            return str(exc)
        return format_html('<a id="entry-point-link" href="{}" target="_blank" rel="noopener">'
                           "{}</a>", url, url)

    @admin.display(description=_("QR code"))
    def qr_code(self, obj: EntryPoint) -> str:
        if not obj.pk:
            return "–"
        try:
            svg = services.qr_svg(obj, scale=4, inline=True)
        except ImproperlyConfigured as exc:
            return str(exc)
        return format_html(
            '<div id="entry-point-qr" style="width:200px;height:200px">{}</div>'
            '<p><a class="button" id="download-png" '
            'href="{}">{}</a> <a class="button" id="download-svg" href="{}">{}</a> '
            '<a class="button" href="{}?size=a4" target="_blank">{}</a> '
            '<a class="button" href="{}?size=a6" target="_blank">{}</a></p>',
            mark_safe(svg), self._url("png", obj), _("Download PNG"), self._url("svg", obj),
            _("Download SVG"), self._url("print", obj), _("Printable A4"),
            self._url("print", obj), _("Printable A6"))

    @admin.display(description=_("history"))
    def history_link(self, obj: EntryPoint) -> str:
        if not obj.pk:
            return "–"
        return format_html('<a id="entry-point-history" href="{}">{}</a>',
                           self._url("history", obj),
                           _("Chats, new contacts, consent and purchases over time"))

    @admin.display(description=_("welcome campaign"))
    def welcome_campaign_link(self, obj: EntryPoint) -> str:
        if not obj.welcome_campaign_id:
            return _("Created with the first welcome sent.")
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:campaigns_campaign_change", args=[obj.welcome_campaign_id]),
            obj.welcome_campaign)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/qr.png", view(self.png_view), name="entrypoints_entrypoint_png"),
            path("<int:pk>/qr.svg", view(self.svg_view), name="entrypoints_entrypoint_svg"),
            path("<int:pk>/print/", view(self.print_view), name="entrypoints_entrypoint_print"),
            path("<int:pk>/history/", view(self.history_view),
                 name="entrypoints_entrypoint_history"),
            *super().get_urls(),
        ]

    def _get(self, request: HttpRequest, pk: int) -> EntryPoint:
        entry_point = get_object_or_404(EntryPoint, pk=pk)
        if not self.has_view_permission(request, entry_point):
            raise PermissionDenied
        return entry_point

    def _file(self, content, content_type: str, entry_point: EntryPoint, ext: str):
        response = HttpResponse(content, content_type=content_type)
        name = slugify(entry_point.name) or entry_point.code.lower()
        response["Content-Disposition"] = f'attachment; filename="qr-{name}.{ext}"'
        return response

    def _qr_or_error(self, request, render):
        try:
            return render()
        except ImproperlyConfigured as exc:
            return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")

    def png_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        entry_point = self._get(request, pk)
        return self._qr_or_error(request, lambda: self._file(
            services.qr_png(entry_point), "image/png", entry_point, "png"))

    def svg_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        entry_point = self._get(request, pk)
        return self._qr_or_error(request, lambda: self._file(
            services.qr_svg(entry_point), "image/svg+xml", entry_point, "svg"))

    def print_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        entry_point = self._get(request, pk)
        size = "a6" if request.GET.get("size") == "a6" else "a4"

        def render():
            return TemplateResponse(request, "admin/entrypoints/entrypoint/print.html", {
                "entry_point": entry_point, "size": size,
                "qr": mark_safe(services.qr_svg(entry_point, scale=8, inline=True)),
                "link": services.entry_point_link(entry_point),
                "text": services.prefilled_text(entry_point)})
        return self._qr_or_error(request, render)

    def history_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        entry_point = self._get(request, pk)
        unit = "day" if request.GET.get("unit") == "day" else "week"
        periods = entry_point_history(entry_point, unit=unit, periods=30 if unit == "day" else 12)
        if request.GET.get("format") == "csv":
            return self._history_csv(entry_point, periods)
        labels = [p.start.strftime("%d.%m.") for p in periods]
        chart = line_chart([
            Series(str(_("chats started")), [p.chats for p in periods], "#4C6EF5"),
            Series(str(_("new contacts")), [p.new_contacts for p in periods], "#2b8a3e"),
            Series(str(_("consented")), [p.consented for p in periods], "#e8590c"),
            Series(str(_("purchases")), [p.purchases for p in periods], "#862e9c"),
        ], labels, width=760, height=240, title=str(_("Entry point history")))
        totals = {
            "chats": sum(p.chats for p in periods),
            "new_contacts": sum(p.new_contacts for p in periods),
            "consented": sum(p.consented for p in periods),
            "purchases": sum(p.purchases for p in periods),
            "revenue": sum((p.revenue for p in periods), 0),
        }
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "original": entry_point, "entry_point": entry_point, "periods": periods,
                   "chart": chart, "unit": unit, "totals": totals,
                   "title": _("History: %(name)s") % {"name": entry_point.name}}
        return TemplateResponse(request, "admin/entrypoints/entrypoint/history.html", context)

    def _history_csv(self, entry_point: EntryPoint, periods) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        name = slugify(entry_point.name) or entry_point.code.lower()
        response["Content-Disposition"] = f'attachment; filename="entry-point-{name}.csv"'
        writer = SafeWriter(response)
        writer.writerow(["period_start", "chats_started", "new_contacts", "consented",
                         "purchases", "revenue"])
        for p in periods:
            writer.writerow([p.start.isoformat(), p.chats, p.new_contacts, p.consented,
                             p.purchases, f"{p.revenue:.2f}"])
        return response


@admin.register(Arrival)
class ArrivalAdmin(admin.ModelAdmin):
    list_display = ["arrived_at", "entry_point", "contact", "new_contact", "consented",
                    "headline"]
    list_filter = ["entry_point", "new_contact", "consented"]
    list_select_related = ["entry_point", "contact"]
    search_fields = ["contact__phone", "message_id"]
    date_hierarchy = "arrived_at"

    @admin.display(description=_("ad headline"))
    def headline(self, obj: Arrival) -> str:
        return (obj.referral or {}).get("headline", "")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ArrivalsContactPart(ContactAdminPart):
    """The entry points a contact arrived through, with the ad's referral, on the contact page."""

    change_form_includes = ["admin/entrypoints/contact_arrivals.html"]

    def change_form_context(self, request, model_admin, obj) -> dict:
        if obj is None:
            return {}
        arrivals = list(Arrival.objects.filter(contact=obj).select_related("entry_point")[:20])
        return {"arrivals": arrivals}
