"""Admin: a journey is a short list of steps, with who would enter today and its report."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns.journeys.models import (
    Enrollment,
    EnrollmentStep,
    Journey,
    JourneyStep,
    JourneyTrigger,
    StepKind,
)
from campaigns.journeys.selectors import journey_preview, journey_report
from campaigns.journeys.services import journey_activate, journey_problems
from tagging.audiences.language import SegmentError, parse


def _expression_error(value: str) -> str:
    try:
        if value.strip():
            parse(value)
    except SegmentError as exc:
        return str(exc)
    return ""


class JourneyForm(forms.ModelForm):
    class Meta:
        model = Journey
        fields = ["name", "description", "active", "trigger", "trigger_tag",
                  "trigger_event_kind", "audience", "exit_on_reply", "exit_on_purchase",
                  "exit_on_opt_out", "exit_when_not_matching", "send_at_reading_hour",
                  "reading_window_hours"]
        widgets = {"audience": forms.Textarea(attrs={"rows": 2}),
                   "description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reading_window_hours"].required = False  # empty keeps the current value

    def clean_reading_window_hours(self) -> int:
        return (self.cleaned_data.get("reading_window_hours")
                or self.instance.reading_window_hours or 24)

    def clean(self):
        data = super().clean()
        trigger = data.get("trigger")
        if trigger in (JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED) and not data.get(
                "trigger_tag"):
            self.add_error("trigger_tag", _("Name the tag whose change starts the journey."))
        if trigger == JourneyTrigger.EVENT and not data.get("trigger_event_kind"):
            self.add_error("trigger_event_kind", _("Name the kind of event that starts the "
                                                   "journey."))
        error = _expression_error(data.get("audience") or "")
        if error:
            self.add_error("audience", _("The expression is invalid: %(error)s")
                           % {"error": error})
        return data


class StepForm(forms.ModelForm):
    class Meta:
        model = JourneyStep
        fields = ["position", "kind", "wait_days", "wait_hours", "window_start", "window_end",
                  "expression", "offer", "template", "add_tags", "remove_tags"]
        widgets = {"expression": forms.Textarea(attrs={"rows": 1, "cols": 30})}

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == StepKind.SEND and not data.get("template"):
            self.add_error("template", _("A send step needs a template."))
        if kind == StepKind.CHECK:
            error = _expression_error(data.get("expression") or "")
            if not (data.get("expression") or "").strip():
                self.add_error("expression", _("A check needs an expression."))
            elif error:
                self.add_error("expression", _("The expression is invalid: %(error)s")
                               % {"error": error})
        if kind == StepKind.OFFER and not data.get("offer"):
            self.add_error("offer", _("An offer check needs its offer."))
        if kind == StepKind.TAGS and not (data.get("add_tags") or data.get("remove_tags")):
            self.add_error("add_tags", _("Name a tag to add or to remove."))
        if bool(data.get("window_start")) != bool(data.get("window_end")):
            self.add_error("window_end", _("Give the window's start and end, or neither."))
        return data


class StepInline(admin.TabularInline):
    model = JourneyStep
    form = StepForm
    extra = 1
    filter_horizontal = ()
    ordering = ["position"]


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    form = JourneyForm
    inlines = [StepInline]
    list_display = ["name", "trigger", "trigger_tag", "active", "entered"]
    list_filter = ["active", "trigger"]
    search_fields = ["name"]
    readonly_fields = ["preview", "report"]
    actions = ["activate", "deactivate"]
    fieldsets = [
        (None, {"fields": ["name", "description", "active"]}),
        (_("Starts when"), {"fields": ["trigger", "trigger_tag", "trigger_event_kind",
                                       "audience", "preview"]}),
        (_("Leaves when"), {"fields": ["exit_on_reply", "exit_on_purchase", "exit_on_opt_out",
                                       "exit_when_not_matching"]}),
        (_("Sending"), {"fields": ["send_at_reading_hour", "reading_window_hours"]}),
        (_("Report"), {"fields": ["report"]}),
    ]

    @admin.display(description=_("entered"))
    def entered(self, journey: Journey) -> int:
        return Enrollment.objects.filter(journey=journey).count()

    @admin.display(description=_("would enter today"))
    def preview(self, journey: Journey) -> str:
        if not journey.pk:
            return _("Shown once the journey is saved.")
        count, sample = journey_preview(journey)
        names = format_html_join(", ", "{}", ((str(c),) for c in sample))
        return format_html("{} {}", ngettext("%(n)d contact", "%(n)d contacts", count)
                           % {"n": count}, format_html("({})", names) if sample else "")

    @admin.display(description=_("report"))
    def report(self, journey: Journey) -> str:
        if not journey.pk:
            return "—"
        data = journey_report(journey)
        head = format_html(
            "<p>{}</p>", _("Entered %(entered)d · in the journey %(active)d · completed "
                           "%(completed)d · left %(exited)d") % data)
        left = format_html_join("", "<li>{}: {}</li>", data["left"].items())
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                    "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                                    "</tr>", (
            (s["position"], s["kind"], s["reached"], s["waiting_before"],
             ", ".join(f"{k} {v}" for k, v in s["outcomes"].items()),
             *(s.get("messages", {}).get(k, "–") for k in ("sent", "delivered", "read",
                                                            "replied")))
            for s in data["steps"]))
        heads = format_html_join("", "<th>{}</th>", ((h,) for h in (
            _("step"), _("kind"), _("reached"), _("waiting for it"), _("outcomes"), _("sent"),
            _("delivered"), _("read"), _("replied"))))
        messages_ = data["messages"]
        totals = format_html("<p>{}</p>", _(
            "Messages: %(sent)d sent, %(delivered)d delivered, %(read)d read, %(replied)d "
            "replied, %(conversions)d converted.") % messages_)
        flags = format_html_join("", "<li>{}</li>", ((f,) for f in messages_["flags"]))
        return format_html('{}<ul>{}</ul><table class="journey-report"><tr>{}</tr>{}</table>'
                           "{}<ul>{}</ul>", head, left, heads, rows, totals, flags)

    def save_model(self, request, obj: Journey, form, change: bool) -> None:
        wanted = obj.active
        obj.active = Journey.objects.filter(pk=obj.pk).values_list(
            "active", flat=True).first() or False if change else False
        super().save_model(request, obj, form, change)
        if wanted != obj.active:
            journey_activate(journey=obj, active=wanted)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        journey = form.instance
        for problem in journey_problems(journey, list(journey.steps.all())):
            self.message_user(request, problem, messages.WARNING)

    @admin.action(description=_("Switch on"), permissions=["change"])
    def activate(self, request, queryset):
        changed = sum(journey_activate(journey=j, active=True) for j in queryset)
        self.message_user(request, ngettext("%(n)d journey switched on.",
                                            "%(n)d journeys switched on.", changed)
                          % {"n": changed})

    @admin.action(description=_("Switch off"), permissions=["change"])
    def deactivate(self, request, queryset):
        changed = sum(journey_activate(journey=j, active=False) for j in queryset)
        self.message_user(request, ngettext("%(n)d journey switched off.",
                                            "%(n)d journeys switched off.", changed)
                          % {"n": changed})


class StepLogInline(admin.TabularInline):
    model = EnrollmentStep
    extra = 0
    can_delete = False
    fields = ["position", "outcome", "detail", "at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["journey", "contact_link", "status", "position", "due_at", "entered_at",
                    "exit_reason"]
    list_filter = ["journey", "status", "exit_reason"]
    search_fields = ["contact__phone", "contact__last_name"]
    list_select_related = ["journey", "contact"]
    inlines = [StepLogInline]
    readonly_fields = ["journey", "contact", "occurrence", "status", "position", "due_at",
                       "entered_at", "finished_at", "exit_reason"]

    @admin.display(description=_("contact"))
    def contact_link(self, enrollment: Enrollment) -> str:
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:crm_contact_change", args=[enrollment.contact_id]), enrollment.contact)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
