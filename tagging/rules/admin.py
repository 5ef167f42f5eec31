"""Admin for rules: edit When/Who/Then, preview, run now, recent runs, conflict warnings."""

from __future__ import annotations

from cron_descriptor import FormatException, Options, get_description
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext_lazy as _

from tagging.rules.models import Rule, RuleRun, RuleTrigger, RunTrigger
from tagging.rules.selectors import rule_recent_runs
from tagging.rules.services import (
    rule_conflicts,
    rule_preview,
    rule_run,
    rule_save,
    rule_validate,
    rules_delete,
    rules_run,
    rules_set_enabled,
)


def schedule_in_words(crontab: str) -> str:
    """“10 3 * * *” → “At 03:10” in the reader's language (cron-descriptor's locales)."""
    options = Options()
    options.use_24hour_time_format = True
    options.locale_code = {"de": "de_DE", "zh-hans": "zh_CN"}.get(get_language() or "", "en_US")
    try:
        return get_description(crontab, options)
    except (FormatException, ValueError, KeyError):
        return crontab


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ["name", "description", "enabled", "priority", "trigger", "event_kind",
                  "event_name", "event_product", "event_category", "event_min_amount",
                  "schedule_every", "schedule_unit", "schedule_crontab", "segment", "add_tags",
                  "add_template", "template_dimension", "remove_tags", "remove_dimension",
                  "expires_after_days", "sync"]
        widgets = {"segment": forms.Textarea(attrs={"rows": 3, "cols": 80,
                                                    "class": "tw-segment"}),
                   "description": forms.Textarea(attrs={"rows": 2, "cols": 80})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("template_dimension")
        if field is not None:  # no new tags in an archived dimension (its own stays visible)
            field.queryset = field.queryset.filter(
                Q(is_archived=False) | Q(pk=self.instance.template_dimension_id))

    def clean(self):
        data = super().clean()
        rule = self.instance
        for name in ("trigger", "event_kind", "segment", "add_template", "schedule_every",
                     "schedule_crontab"):
            setattr(rule, name, data.get(name) or ("" if name != "schedule_every" else None))
        rule.template_dimension_id = getattr(data.get("template_dimension"), "pk", None)
        problems = rule_validate(rule, data.get("add_tags") or [], data.get("remove_tags") or [])
        if problems:
            raise ValidationError(problems)
        return data


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ["name", "enabled", "priority", "when", "segment", "then", "last_run"]
    list_display_links = ["name"]
    list_filter = ["enabled", "trigger"]
    search_fields = ["name", "description", "segment"]
    filter_horizontal = ["add_tags", "remove_tags"]
    readonly_fields = ["conflicts", "recent_runs", "periodic_task_link"]
    actions = ["run_now", "enable", "disable", "delete_rules"]
    change_form_template = "admin/rules/rule/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "description", ("enabled", "priority")]}),
        (_("When"), {"fields": ["trigger",
                                ("event_kind", "event_name"),
                                ("event_product", "event_category", "event_min_amount"),
                                ("schedule_every", "schedule_unit"), "schedule_crontab",
                                "periodic_task_link"],
                     "description": _("On an event kind (with optional filters), or on a "
                                      "schedule: every N units or a crontab.")}),
        (_("Who"), {"fields": ["segment"]}),
        (_("Then"), {"fields": ["remove_tags", "remove_dimension", "add_tags",
                                ("add_template", "template_dimension"),
                                "expires_after_days", "sync"]}),
        (_("Checks and runs"), {"fields": ["conflicts", "recent_runs"]}),
    ]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # delete_rules also removes the beat tasks
        return actions

    # --- list columns ---------------------------------------------------------------------

    @admin.display(description=_("when"))
    def when(self, obj: Rule) -> str:
        if obj.trigger == RuleTrigger.EVENT:
            filters = [f for f in (obj.event_name, obj.event_product, obj.event_category) if f]
            label = obj.get_event_kind_display()
            return f"{label} ({', '.join(filters)})" if filters else label
        if obj.schedule_crontab:
            return format_html('<span title="{}">{}</span>', obj.schedule_crontab,
                               schedule_in_words(obj.schedule_crontab))
        if obj.schedule_every:
            return _("every %(n)d %(unit)s") % {"n": obj.schedule_every,
                                                 "unit": obj.get_schedule_unit_display()}
        return _("manual only")

    @admin.display(description=_("then"))
    def then(self, obj: Rule) -> str:
        parts = [f"−{t.name}" for t in obj.remove_tags.all()]
        if obj.remove_dimension_id:
            parts.append(f"−{obj.remove_dimension}/*")
        parts += [f"+{t.name}" for t in obj.add_tags.all()]
        if obj.add_template:
            parts.append(f"+{obj.add_template}")
        return ", ".join(parts)

    @admin.display(description=_("last run"))
    def last_run(self, obj: Rule) -> str:
        run = obj.runs.first()
        if run is None:
            return "—"
        started = formats.date_format(timezone.localtime(run.started_at),
                                      "SHORT_DATETIME_FORMAT")
        text = f"{started} · +{run.added} −{run.removed}"
        return format_html('<span class="errornote">{}</span>', run.errors) if run.errors \
            else text

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("add_tags", "remove_tags")

    # --- change page ----------------------------------------------------------------------

    @admin.display(description=_("conflicts"))
    def conflicts(self, obj: Rule) -> str:
        if not obj.pk:
            return "—"
        found = rule_conflicts(rule=obj)
        if not found:
            return _("No enabled rule undoes this one on the same contacts.")
        return format_html_join("", '<p class="tw-conflict">⚠ {}</p>',
                                ((c.message,) for c in found))

    @admin.display(description=_("recent runs"))
    def recent_runs(self, obj: Rule) -> str:
        runs = rule_recent_runs(rule=obj) if obj.pk else []
        if not runs:
            return _("Not run yet.")
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td>"
            "<td>{}</td></tr>",
            ((f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.get_trigger_display(), r.matched, r.added,
              r.removed, r.duration_ms, r.errors or "") for r in runs))
        return format_html(
            '<table class="tw-runs"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("when"), _("trigger"), _("matched"), _("added"), _("removed"), _("duration"),
            _("errors"), rows)

    @admin.display(description=_("beat task"))
    def periodic_task_link(self, obj: Rule) -> str:
        if not obj.periodic_task_id:
            return "—"
        url = reverse("admin:django_celery_beat_periodictask_change",
                      args=[obj.periodic_task_id])
        return format_html('<a href="{}">{}</a>', url, obj.periodic_task)

    def save_model(self, request, obj, form, change):
        rule_save(rule=obj)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        rule = form.instance
        rule_save(rule=rule)  # the schedule's name may depend on the saved tags' rule name
        for conflict in rule_conflicts(rule=rule):
            self.message_user(request, conflict.message, messages.WARNING)

    def delete_model(self, request, obj):
        rules_delete(rules=Rule.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        rules_delete(rules=queryset)

    # --- actions --------------------------------------------------------------------------

    def has_run_permission(self, request) -> bool:
        return request.user.has_perm("rules.run_rule")

    @admin.action(description=_("Run selected rules now"), permissions=["run"])
    def run_now(self, request, queryset):
        scheduled = queryset.filter(trigger=RuleTrigger.SCHEDULE)
        outcomes = rules_run(rules=list(scheduled.order_by("-priority", "name")),
                             trigger=RunTrigger.MANUAL, actor=request.user)
        added = sum(o.added for o in outcomes)
        removed = sum(o.removed for o in outcomes)
        failed = [o for o in outcomes if o.errors]
        self.message_user(request, ngettext(
            "%(n)d rule ran: %(added)d tags added, %(removed)d removed.",
            "%(n)d rules ran: %(added)d tags added, %(removed)d removed.", len(outcomes))
            % {"n": len(outcomes), "added": added, "removed": removed},
            messages.WARNING if failed else messages.SUCCESS)
        for outcome in failed:
            self.message_user(request, f"{outcome.rule}: {outcome.errors}", messages.ERROR)
        skipped = queryset.count() - scheduled.count()
        if skipped:
            self.message_user(request, ngettext(
                "%(n)d event rule skipped: event rules run when their events arrive.",
                "%(n)d event rules skipped: event rules run when their events arrive.", skipped)
                % {"n": skipped}, messages.INFO)

    @admin.action(description=_("Enable selected rules"), permissions=["change"])
    def enable(self, request, queryset):
        count = rules_set_enabled(rules=queryset, enabled=True)
        self.message_user(request, ngettext("%(n)d rule enabled.", "%(n)d rules enabled.",
                                            count) % {"n": count})

    @admin.action(description=_("Disable selected rules"), permissions=["change"])
    def disable(self, request, queryset):
        count = rules_set_enabled(rules=queryset, enabled=False)
        self.message_user(request, ngettext("%(n)d rule disabled.", "%(n)d rules disabled.",
                                            count) % {"n": count})

    @admin.action(description=_("Delete selected rules (and their schedules)"),
                  permissions=["delete"])
    def delete_rules(self, request, queryset):
        count = rules_delete(rules=queryset)
        self.message_user(request, ngettext("%(n)d rule deleted.", "%(n)d rules deleted.",
                                            count) % {"n": count})

    # --- preview and run pages ------------------------------------------------------------

    def get_urls(self):
        urls = [
            path("<int:rule_id>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="rules_rule_preview"),
            path("<int:rule_id>/run/", self.admin_site.admin_view(self.run_view),
                 name="rules_rule_run"),
        ]
        return urls + super().get_urls()

    def preview_view(self, request, rule_id: int):
        rule = get_object_or_404(Rule, pk=rule_id)
        if not self.has_view_permission(request, rule):
            raise PermissionDenied
        error = ""
        try:
            preview = rule_preview(rule=rule)
        except ValueError as exc:  # SegmentError and template errors
            preview, error = None, getattr(exc, "message", None) or str(exc)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "original": rule, "title": _("Preview: %(name)s") % {"name": rule.name},
                   "preview": preview, "error": error,
                   "can_run": self.has_run_permission(request) and rule.is_scheduled}
        return TemplateResponse(request, "admin/rules/rule/preview.html", context)

    def run_view(self, request, rule_id: int):
        rule = get_object_or_404(Rule, pk=rule_id)
        if request.method != "POST" or not self.has_run_permission(request):
            raise PermissionDenied
        if not rule.is_scheduled:
            self.message_user(request, _("Event rules run when their events arrive; use the "
                                         "preview to see what they do."), messages.ERROR)
            return redirect("admin:rules_rule_change", rule.pk)
        outcome = rule_run(rule=rule, trigger=RunTrigger.MANUAL, actor=request.user)
        if outcome.errors:
            self.message_user(request, outcome.errors, messages.ERROR)
        else:
            self.message_user(request, _(
                "“%(rule)s” ran: %(matched)d contacts matched, %(added)d tags added, "
                "%(removed)d removed.") % {"rule": rule.name, "matched": outcome.matched,
                                           "added": outcome.added, "removed": outcome.removed})
        return redirect("admin:rules_rule_change", rule.pk)


@admin.register(RuleRun)
class RuleRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "rule", "trigger", "matched", "added", "removed",
                    "duration_ms", "errors"]
    list_filter = ["trigger", "rule"]
    list_select_related = ["rule"]
    date_hierarchy = "started_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
