"""Admin for insight: the dashboard (admin index), health reports, tag analytics.

The contacts list gains two filters through ``InsightContactPart`` so that
every finding can link to exactly the contacts it is about.
"""

from __future__ import annotations

import csv
from datetime import timedelta

from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.validators import validate_email
from django.db.models import Exists, OuterRef, Q
from django.forms import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from crm.admin import ContactAdminPart
from crm.jobs import enqueue
from tagging.insight import charts
from tagging.insight.conf import insight_setting
from tagging.insight.models import HealthReport, ReportTrigger
from tagging.insight.selectors import (
    analytics_subject,
    holder_metrics,
    holders_over_time,
    report_comparison,
    report_headline,
    report_previous,
    tag_breakdown,
)
from tagging.insight.services import (
    SleepingVipsError,
    health_report_create,
    health_report_send,
    report_recipients,
    sleeping_vips_move,
)
from tagging.insight.tasks import dashboard_refresh_task
from tagging.models import Dimension, Tag, TagAssignment
from tagging.permissions import TagPermissionDenied

admin.site.index_template = "admin/insight/index.html"


# --- contacts list filters -----------------------------------------------------------


class HoldsTagFilter(admin.SimpleListFilter):
    title = gettext_lazy("holds tag")
    parameter_name = "insight_tag"

    def lookups(self, request, model_admin):
        return [(str(t.pk), t.name) for t in
                Tag.objects.filter(is_archived=False).select_related("dimension")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(Exists(TagAssignment.objects.filter(
            contact=OuterRef("pk"), tag_id=int(value))))


class IdleFilter(admin.SimpleListFilter):
    title = gettext_lazy("no interaction for")
    parameter_name = "insight_idle"

    def lookups(self, request, model_admin):
        days = sorted({14, 30, 60, 90, insight_setting("STALE_DAYS")})
        return [(str(d), ngettext("%(n)d day or more", "%(n)d days or more", d) % {"n": d})
                for d in days]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        cutoff = timezone.now() - timedelta(days=int(value))
        return queryset.filter(Q(last_interaction_at__lte=cutoff) | Q(
            last_interaction_at__isnull=True, created_at__lte=cutoff))


class InsightContactPart(ContactAdminPart):
    """Adds “holds tag” and “no interaction for” to the contacts list filters."""

    def list_filter(self, request, filters: list) -> list:
        return [*filters, HoldsTagFilter, IdleFilter]


# --- analytics cache -------------------------------------------------------------------


def _analytics_data(subject) -> dict:
    """The analytics of a subject, cached for ``ANALYTICS_CACHE_SECONDS``.

    At a million contacts one subject takes seconds; the page, a reload and
    the CSV export right after it then share one computation.
    """
    ids = ",".join(str(t.pk) for t in sorted(subject.tags, key=lambda t: t.pk))
    key = f"insight:analytics:{subject.dimension.pk if subject.dimension else '-'}:{ids}"

    def compute() -> dict:
        now = timezone.now()
        return {"at": now, "metrics": holder_metrics(subject, now=now),
                "breakdown": tag_breakdown(subject.tags, now=now),
                "over_time": holders_over_time(subject.tags, now=now)}

    seconds = insight_setting("ANALYTICS_CACHE_SECONDS")
    if not seconds:
        return compute()
    return cache.get_or_set(key, compute, timeout=seconds)


# --- health reports ---------------------------------------------------------------------


def _int_list(raw: list[str]) -> list[int] | None:
    """``["1,2", "3"]`` → ``[1, 2, 3]``; None when something is not a number."""
    values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    if not all(v.isdigit() for v in values):
        return None
    return [int(v) for v in values]


@admin.register(HealthReport)
class HealthReportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "trigger", "headline", "inactive", "overloaded", "near_twins",
                    "sleeping_vips", "sent_at"]
    list_filter = ["trigger"]
    date_hierarchy = "created_at"
    change_list_template = "admin/insight/healthreport_change_list.html"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("headline"))
    def headline(self, obj: HealthReport) -> str:
        return " · ".join(report_headline(obj.summary))

    @admin.display(description=gettext_lazy("inactive"))
    def inactive(self, obj: HealthReport) -> int:
        return len(obj.summary.get("inactive", []))

    @admin.display(description=gettext_lazy("overloaded"))
    def overloaded(self, obj: HealthReport) -> int:
        return len(obj.summary.get("overloaded", []))

    @admin.display(description=gettext_lazy("near-twins"))
    def near_twins(self, obj: HealthReport) -> int:
        return len(obj.summary.get("near_twins", []))

    @admin.display(description=gettext_lazy("sleeping VIPs"))
    def sleeping_vips(self, obj: HealthReport) -> int:
        return obj.summary.get("sleeping_vips", 0)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("generate/", wrap(self.generate_view), name="insight_healthreport_generate"),
            path("<int:pk>/send/", wrap(self.send_view), name="insight_healthreport_send"),
            path("<int:pk>/move-sleeping-vips/", wrap(self.move_vips_view),
                 name="insight_healthreport_move_vips"),
            path("analytics/", wrap(self.analytics_view), name="insight_healthreport_analytics"),
            path("analytics/export.csv", wrap(self.analytics_csv_view),
                 name="insight_healthreport_analytics_csv"),
            path("dashboard/refresh/", wrap(self.dashboard_refresh_view),
                 name="insight_healthreport_dashboard_refresh"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not str(object_id).isdigit():
            return HttpResponseRedirect(reverse("admin:insight_healthreport_changelist"))
        report = get_object_or_404(HealthReport, pk=object_id)
        previous = report_previous(report)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "title": str(report), "report": report, "f": report.findings,
            "headline": report_headline(report.summary), "previous": previous,
            "changes": report_comparison(report, previous),
            "recipients": ", ".join(report_recipients(None) or
                                    ([request.user.email] if request.user.email else [])),
            "can_send": request.user.has_perm("insight.add_healthreport"),
            "base_url": "",
        }
        return TemplateResponse(request, "admin/insight/healthreport_detail.html", context)

    @staticmethod
    def _require(request: HttpRequest, perm: str) -> None:
        if not request.user.has_perm(perm):
            raise PermissionDenied

    @staticmethod
    def _report_url(report: HealthReport) -> str:
        return reverse("admin:insight_healthreport_change", args=[report.pk])

    @staticmethod
    def _post_only(request: HttpRequest) -> HttpResponse | None:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:insight_healthreport_changelist"))
        return None

    def generate_view(self, request):
        if response := self._post_only(request):
            return response
        self._require(request, "insight.add_healthreport")
        report = health_report_create(trigger=ReportTrigger.ADMIN, actor=request.user)
        self.message_user(request, _("Tag health report generated in %(s).1f s.")
                          % {"s": report.duration_ms / 1000}, messages.SUCCESS)
        return HttpResponseRedirect(self._report_url(report))

    def send_view(self, request, pk: int):
        report = get_object_or_404(HealthReport, pk=pk)
        if response := self._post_only(request):
            return response
        self._require(request, "insight.add_healthreport")
        raw = request.POST.get("recipients", "")
        recipients = [r.strip() for r in raw.replace(";", ",").split(",") if r.strip()]
        invalid = []
        for address in recipients:
            try:
                validate_email(address)
            except ValidationError:
                invalid.append(address)
        if invalid or not recipients:
            self.message_user(request, _("Not sent: give one or more e-mail addresses separated "
                                         "by commas (not valid: %(bad)s).")
                              % {"bad": ", ".join(invalid) or "—"}, messages.ERROR)
            return HttpResponseRedirect(self._report_url(report))
        sent = health_report_send(report=report, recipients=recipients,
                                  base_url=request.build_absolute_uri("/"))
        self.message_user(request, ngettext("Report sent to %(n)d recipient.",
                                            "Report sent to %(n)d recipients.", len(recipients))
                          % {"n": len(recipients)} if sent else _("The mail backend sent nothing."),
                          messages.SUCCESS if sent else messages.WARNING)
        return HttpResponseRedirect(self._report_url(report))

    def move_vips_view(self, request, pk: int):
        report = get_object_or_404(HealthReport, pk=pk)
        if response := self._post_only(request):
            return response
        try:
            result = sleeping_vips_move(actor=request.user, report=report)
        except (SleepingVipsError, TagPermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._report_url(report))
        self.message_user(
            request,
            ngettext("%(n)d sleeping VIP moved to “%(tag)s”. Operation %(op)s can be undone.",
                     "%(n)d sleeping VIPs moved to “%(tag)s”. Operation %(op)s can be undone.",
                     result.added) % {"n": result.added, "tag": insight_setting("REACTIVATION_TAG"),
                                      "op": result.operation},
            messages.SUCCESS if result.added else messages.INFO,
        )
        return HttpResponseRedirect(self._report_url(report))

    def dashboard_refresh_view(self, request):
        self._require(request, "crm.view_contact")
        if request.method == "POST":
            enqueue(dashboard_refresh_task.name)
            self.message_user(request, _("The dashboard is being recomputed; reload in a moment."),
                              messages.INFO)
        return HttpResponseRedirect(reverse("admin:index"))

    # --- analytics ---

    def _subject(self, request):
        if not request.user.has_perm("tagging.view_tag"):
            raise PermissionDenied
        tag_ids = _int_list(request.GET.getlist("tags"))
        dimension = request.GET.get("dimension", "").strip()
        if tag_ids is None or (dimension and not dimension.isdigit()):
            return None, _("Pick tags or a dimension from the lists; the address held something "
                           "that is not a tag or dimension number.")
        if not tag_ids and not dimension:
            return None, ""
        subject = analytics_subject(tag_ids=tag_ids, dimension_id=int(dimension or 0))
        if subject is None:
            return None, _("No such tag or dimension; it may have been deleted.")
        return subject, ""

    def analytics_view(self, request):
        subject, error = self._subject(request)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": _("Tag analytics"), "subject": subject, "error": error,
            "all_tags": Tag.objects.select_related("dimension").order_by(
                "dimension__order", "dimension__name", "name"),
            "dimensions": Dimension.objects.all(),
            "selected_tags": {t.pk for t in subject.tags} if subject and not subject.dimension
            else set(),
        }
        if subject:
            data = _analytics_data(subject)
            metrics, over_time, breakdown = data["metrics"], data["over_time"], data["breakdown"]
            context.update({
                "computed_at": data["at"],
                "metrics": metrics, "breakdown": breakdown,
                "over_time_chart": charts.line_chart(
                    [charts.Series(s["name"], s["values"], s["colour"]) for s in
                     over_time["series"][:8]], over_time["labels"], width=720, height=220,
                    title=_("Holders over time")),
                "conversion_chart": charts.bar_chart(
                    [charts.Bar(r["name"], r["conversion"] or 0, r["colour"],
                                text=charts.percent(r["conversion"])) for r in breakdown],
                    width=720, label_width=260, max_value=1, title=_("Conversion per tag")),
                "csv_url": f"{reverse('admin:insight_healthreport_analytics_csv')}?"
                           f"{request.GET.urlencode()}",
            })
        return TemplateResponse(request, "admin/insight/analytics.html", context)

    def analytics_csv_view(self, request):
        subject, error = self._subject(request)
        if subject is None:
            self.message_user(request, error or _("Pick a tag or a dimension first."),
                              messages.ERROR)
            return HttpResponseRedirect(reverse("admin:insight_healthreport_analytics"))
        data = _analytics_data(subject)
        now = data["at"]
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = f"tag-analytics-{now:%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.write("\ufeff")  # Excel opens UTF-8 (umlauts) correctly with a BOM
        writer = csv.writer(response)
        writer.writerow([_("section"), _("subject"), _("measure"), _("holders"), _("others")])
        for metric in data["metrics"]:
            writer.writerow(["comparison", subject.label, metric.label, metric.holders,
                             metric.others])
        writer.writerow([])
        columns = ["holders", "conversion", "frequency", "revenue", "revenue_per_contact",
                   "read_rate", "reply_rate"]
        writer.writerow([_("section"), _("tag"), _("dimension"), *columns])
        for row in data["breakdown"]:
            writer.writerow(["per_tag", row["name"], row["dimension"],
                             *[row[c] for c in columns]])
        writer.writerow([])
        over_time = data["over_time"]
        writer.writerow([_("section"), _("tag"), *over_time["labels"]])
        for series in over_time["series"]:
            writer.writerow(["holders_over_time", series["name"], *series["values"]])
        return response

