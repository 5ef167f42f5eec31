"""Admin: templates with preview, campaigns with checks, live report, actions and CSV export."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import Coalesce, Length
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns import services
from campaigns.backends import AmbiguousSendError, WhatsAppError
from campaigns.content import render_preview, template_checks
from campaigns.display import error_meaning, exclusion_label, status_label
from campaigns.models import (
    Alert,
    Campaign,
    CampaignStatus,
    DeletionKeyword,
    DeletionRequest,
    Exclusion,
    InboundMessage,
    KeywordRule,
    OptOut,
    OptOutKeyword,
    Send,
    Sender,
    SendingPolicy,
    SendStatus,
    SensitiveWord,
    StatusEvent,
    Template,
    WebhookDeadLetter,
    WebhookDelivery,
)
from campaigns.policy import sending_policy, sending_policy_changed
from campaigns.prelaunch import launch_estimate, night_recipients, reading_spread
from campaigns.schedule import send_time_suggest
from campaigns.selectors import campaign_report, opt_out_words, quiet_hours_state, recipients
from campaigns.webhooks import webhooks_replay
from campaigns.zones import time_zone_choices
from crm.admin import ReadOnlyAdmin
from crm.csvsafe import SafeWriter
from crm.jobs import enqueue
from crm.models import Contact
from crm.timeline import Cursor, Entry, timeline_sources
from tagging.audiences.language import SegmentError, parse
from tagging.insight.dashboard import register_change_probe
from tagging.insight.tasks import dashboard_refresh_task


def _pct(value) -> str:
    return "–" if value is None else formats.number_format(value * 100, 1) + "%"


def _reasons(counts: dict[str, int]):
    """Counts by reason as a list of sentences, largest first; "0" when there are none."""
    if not counts:
        return "0"
    return format_html('<ul class="tw-reasons">{}</ul>', format_html_join(
        "", "<li><strong>{}</strong> {}</li>",
        ((formats.number_format(n, force_grouping=True), text)
         for text, n in sorted(counts.items(), key=lambda kv: -kv[1]))))


class TestSendForm(forms.Form):
    phone = forms.CharField(
        label=_("Phone number"), max_length=40,
        help_text=_("With country code, e.g. +49 170 1234567; without one the default region "
                    "(TAGWERK_DEFAULT_REGION) is assumed."))
    contact = forms.ModelChoiceField(
        queryset=Contact.objects.all(), required=False, label=_("Values from contact"),
        help_text=_("The contact whose name and facts fill the variables. Empty: the contact "
                    "with this phone number, else the fallbacks (e.g. “Kundin/Kunde”)."))

    def __init__(self, *args, admin_site=None, **kwargs):
        super().__init__(*args, **kwargs)
        if admin_site is not None:
            self.fields["contact"].widget = ForeignKeyRawIdWidget(
                Send._meta.get_field("contact").remote_field, admin_site)


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "category", "status", "created_at"]
    list_filter = ["category", "status", "language"]
    search_fields = ["name", "body"]
    readonly_fields = ["preview", "findings", "test_send"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"  # a link typed without a scheme is https
        return super().formfield_for_dbfield(db_field, request, **kwargs)
    fieldsets = [
        (None, {"fields": ["name", "language", "category", "status"]}),
        (_("Content"), {"fields": ["body", "variables", "header_image", "header_image_link",
                                   "footer", "buttons"]}),
        (_("Preview and checks"), {"fields": ["preview", "findings", "test_send"]}),
    ]

    @admin.display(description=_("test send"))
    def test_send(self, obj: Template) -> str:
        if not obj.pk:
            return _("Save the template first.")
        return format_html('<a class="button" id="template-test-send" href="{}">{}</a>',
                           reverse("admin:campaigns_template_test_send", args=[obj.pk]),
                           _("Send a test message…"))

    def get_urls(self):
        return [path("<int:pk>/test-send/", self.admin_site.admin_view(self.test_send_view),
                     name="campaigns_template_test_send"), *super().get_urls()]

    def has_test_send_permission(self, request, obj=None) -> bool:
        return (self.has_change_permission(request, obj)
                or request.user.has_perm("campaigns.change_campaign"))

    def test_send_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = get_object_or_404(Template, pk=pk)
        if not self.has_test_send_permission(request, template):
            raise PermissionDenied
        form = TestSendForm(request.POST or None, admin_site=self.admin_site)
        if request.method == "POST" and form.is_valid():
            done = self._test_send(request, template, form)
            if done:
                return redirect(reverse("admin:campaigns_template_change", args=[pk]))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "original": template, "form": form, "media": self.media + form.media,
                   "title": _("Test send: %(template)s") % {"template": template}}
        return TemplateResponse(request, "admin/campaigns/template_test_send.html", context)

    def _test_send(self, request, template: Template, form) -> bool:
        phone, contact = form.cleaned_data["phone"], form.cleaned_data.get("contact")
        try:
            result = services.template_test_send(template=template, phone=phone, contact=contact)
        except services.CampaignError as exc:
            form.add_error("phone", str(exc))
            return False
        except WhatsAppError as exc:
            self.message_user(request, _(
                "WhatsApp refused the test message to %(phone)s: %(error)s")
                % {"phone": phone, "error": exc}, messages.ERROR)
            return True
        except AmbiguousSendError as exc:
            self.message_user(request, _(
                "No clear answer from WhatsApp for the test message to %(phone)s (%(error)s); "
                "it may or may not arrive.") % {"phone": phone, "error": exc}, messages.WARNING)
            return True
        except ImproperlyConfigured as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return True
        self.message_user(request, _(
            "Test message accepted by WhatsApp for %(phone)s (message id %(wamid)s).")
            % {"phone": phone, "wamid": result.wamid}, messages.SUCCESS)
        return True


    @admin.display(description=_("preview"))
    def preview(self, obj: Template) -> str:
        if not obj.pk:
            return "–"
        people = list(Contact.objects.order_by("-id")[:3])
        if not people:
            return _("Add a contact to see a preview.")
        return format_html_join(
            "", '<div class="tw-preview"><b>{}</b><pre style="white-space:pre-wrap">{}</pre>'
            "</div>", ((str(c), render_preview(obj, c)) for c in people))

    @admin.display(description=_("checks"))
    def findings(self, obj: Template) -> str:
        if not obj.pk:
            return "–"
        checks = template_checks(obj, opt_out_words=opt_out_words())
        if not checks:
            return _("No findings.")
        return format_html_join("", "<p><b>{}</b>: {}</p>",
                                ((c.level, c.message) for c in checks))


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "template", "audience", "suppression", "scheduled_at", "time_zone",
                  "quiet_start", "quiet_end", "send_at_reading_hour", "reading_window_hours",
                  "rate_per_second", "phone_number_id", "ab_config", "followup_template",
                  "followup_after_days", "followup_skip_read"]
        widgets = {"audience": forms.Textarea(attrs={"rows": 2}),
                   "suppression": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"] = forms.ChoiceField(
            label=_("time zone"), required=False,
            choices=[("", _("automatic (audience / server)")),
                     *time_zone_choices(self.instance.time_zone)],
            help_text=Campaign._meta.get_field("time_zone").help_text)
        if "scheduled_at" in self.fields:
            self.fields["scheduled_at"].help_text = self._suggestion()
        if "reading_window_hours" in self.fields:  # empty keeps the current value
            self.fields["reading_window_hours"].required = False

    def clean_reading_window_hours(self) -> int:
        return (self.cleaned_data.get("reading_window_hours")
                or self.instance.reading_window_hours or 24)

    def _suggestion(self) -> str:
        campaign = self.instance
        target = campaign if campaign.pk else (campaign.time_zone or settings.TIME_ZONE)
        slot = send_time_suggest(target)
        local = timezone.localtime(slot)
        date_value = formats.localize_input(local.date())
        time_value = formats.localize_input(local.time().replace(second=0))
        fill = (f"document.getElementById('id_scheduled_at_0').value='{date_value}';"
                f"document.getElementById('id_scheduled_at_1').value='{time_value}';"
                "return false;")
        shown = f"{slot:%a %Y-%m-%d %H:%M} ({slot.tzinfo})"
        if local.utcoffset() != slot.utcoffset():
            shown += f" = {local:%H:%M} {_('server time')}"
        return format_html(
            '{} <span id="send-time-suggestion">{}</span> '
            '<a href="#" class="button" id="use-suggested-time" onclick="{}">{}</a><br>{}',
            _("Suggested (Tue–Thu 11:00 or 20:00 in the audience's time zone, read most):"),
            shown, fill, _("Use this time"),
            _("Empty: send when launched. Times are entered in server time (%(tz)s).")
            % {"tz": timezone.get_current_timezone_name()})

    def clean(self):
        data = super().clean()
        start, end = data.get("quiet_start"), data.get("quiet_end")
        if (start is None) != (end is None):
            raise forms.ValidationError(_(
                "Quiet hours need both times, e.g. from 21:00 until 08:00; leave both empty "
                "for none."))
        if start is not None and start == end:
            self.add_error("quiet_end", _("Quiet hours cannot start and end at the same time."))
        return data

    def _expression(self, name: str) -> str:
        value = self.cleaned_data.get(name, "")
        if value.strip():
            try:
                parse(value)
            except SegmentError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return value

    def clean_audience(self) -> str:
        return self._expression("audience")

    def clean_suppression(self) -> str:
        return self._expression("suppression")


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = ["name", "status", "recipients_count", "sent_count", "delivery",
                    "read", "reply", "launched_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    actions = ["launch", "pause", "resume", "cancel"]
    readonly_fields = ["status", "status_message", "quiet_state", "launched_at",
                       "finished_at", "ab_winner", "report", "checks"]
    fieldsets = [
        (None, {"fields": ["name", "template", "audience", "suppression", "scheduled_at"]}),
        (_("Sending"), {"fields": ["time_zone", "quiet_start", "quiet_end",
                                   "send_at_reading_hour", "reading_window_hours",
                                   "rate_per_second", "phone_number_id"]}),
        (_("A/B test and follow-up"), {"classes": ["collapse"], "fields": [
            "ab_config", "followup_template", "followup_after_days", "followup_skip_read"]}),
        (_("Status"), {"fields": ["status", "status_message", "quiet_state", "launched_at",
                                  "finished_at", "ab_winner", "checks", "report"]}),
    ]

    def get_queryset(self, request):
        live = [SendStatus.SENT, SendStatus.DELIVERED, SendStatus.READ]
        return super().get_queryset(request).annotate(
            n_recipients=Count("sends", distinct=True),
            n_sent=Count("sends", filter=Q(sends__status__in=live), distinct=True),
            n_failed=Count("sends", filter=Q(sends__status=SendStatus.FAILED), distinct=True),
            n_delivered=Count("sends", filter=Q(sends__status__in=live[1:]), distinct=True),
            n_read=Count("sends", filter=Q(sends__status=SendStatus.READ), distinct=True),
            n_replied=Count("sends", filter=Q(sends__replied_at__isnull=False), distinct=True),
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description=_("recipients"), ordering="n_recipients")
    def recipients_count(self, obj):
        return obj.n_recipients

    @admin.display(description=_("sent"), ordering="n_sent")
    def sent_count(self, obj):
        return obj.n_sent

    @admin.display(description=_("delivered"))
    def delivery(self, obj):
        attempted = obj.n_sent + obj.n_failed
        return _pct(obj.n_delivered / attempted if attempted else None)

    @admin.display(description=_("read"))
    def read(self, obj):
        return _pct(obj.n_read / obj.n_delivered if obj.n_delivered else None)

    @admin.display(description=_("replied"))
    def reply(self, obj):
        return _pct(obj.n_replied / obj.n_delivered if obj.n_delivered else None)

    @admin.display(description=_("quiet hours"))
    def quiet_state(self, obj: Campaign) -> str:
        state = quiet_hours_state(obj) if obj.pk else None
        if state is None:
            return _("None.")
        return format_html('<span id="quiet-hours" data-active="{}">{}</span>',
                           "1" if state["active"] else "0", state["note"])

    @admin.display(description=_("pre-launch checks"))
    def checks(self, obj: Campaign) -> str:
        if not obj.pk or obj.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
            return "–"
        found = services.campaign_checks(campaign=obj)
        if not found:
            return _("All checks passed.")
        return format_html_join("", '<p class="tw-check-{}"><b>{}</b>: {}</p>',
                                ((c.level, c.level, c.message) for c in found))

    @admin.display(description=_("report"))
    def report(self, obj: Campaign) -> str:
        if not obj.pk or not obj.launched_at:
            return _("The report fills once the campaign is launched.")
        r = campaign_report(obj)
        rows = [
            (_("recipients"), r["recipients"]), (_("sent"), r["sent"]),
            (_("delivered"), f"{r['delivered']} ({_pct(r['delivery_rate'])})"),
            (_("read"), f"{r['read']} ({_pct(r['read_rate'])})"),
            (_("replied"), f"{r['replied']} ({_pct(r['reply_rate'])})"),
            (_("clicked a link"), f"{r['clicked']} ({_pct(r['click_rate'])})"),
            (_("failed"), _reasons({error_meaning(k): v for k, v in r["failed"].items()})),
            (_("held back by WhatsApp, retried later"), r["limited"]),
            (_("excluded"), _reasons({exclusion_label(k): v for k, v in r["excluded"].items()})),
            (_("conversions"), f"{r['conversions']} ({_pct(r['conversion_rate'])})"),
            (_("revenue"), formats.number_format(Decimal(r["revenue"]), 2, force_grouping=True)),
        ]
        keys = ["recipients", "sent", "delivered", "read", "replied", "clicked", "failed",
                "limited",
                "excluded", "conversions", "revenue"]
        html = format_html('<table class="tw-report" id="campaign-report">{}</table>',
                           format_html_join("", '<tr><th>{}</th><td data-key="{}">{}</td></tr>',
                                            ((k, key, v) for key, (k, v) in zip(
                                                keys, rows, strict=True))))
        for variant, row in (r.get("variants") or {}).items():
            html += format_html("<p>{}</p>", _(
                "Variant %(variant)s: %(sent)s sent, %(delivered)s delivered, read %(read)s, "
                "replied %(replied)s") % {"variant": variant, "sent": row["sent"],
                                          "delivered": row["delivered"],
                                          "read": _pct(row["read_rate"]),
                                          "replied": _pct(row["reply_rate"])})
        if r.get("ab"):
            html += format_html("<p><b>A/B:</b> {}</p>", r["ab"]["note"])
        html += format_html_join("", '<p class="tw-flag">⚑ {}</p>', ((f,) for f in r["flags"]))
        links = format_html(
            '<p><a href="{}">{}</a> · <a href="{}">{}</a> · <a href="{}">{}</a></p>',
            reverse("admin:campaigns_send_changelist") + f"?campaign__id__exact={obj.pk}",
            _("Recipients"),
            reverse("admin:campaigns_exclusion_changelist") + f"?campaign__id__exact={obj.pk}",
            _("Excluded contacts"),
            reverse("admin:campaigns_campaign_export", args=[obj.pk]), _("CSV export"))
        return html + links

    def get_urls(self):
        wrap = self.admin_site.admin_view
        steps = [path(f"<int:pk>/{step}/", wrap(self.lifecycle_view), {"step": step},
                      name=f"campaigns_campaign_{step}") for step in self.LIFECYCLE]
        return [path("<int:pk>/export/", wrap(self.export), name="campaigns_campaign_export"),
                path("<int:pk>/estimate/", wrap(self.estimate_view),
                     name="campaigns_campaign_estimate"),
                *steps, *super().get_urls()]

    def export(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        if not self.has_view_permission(request, campaign):
            return HttpResponse(status=403)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{pk}.csv"'
        writer = SafeWriter(response)
        writer.writerow(["phone", "name", "variant", "status", "error_code", "sent_at",
                         "delivered_at", "read_at", "replied_at", "clicked_at", "converted"])
        for send in recipients(campaign).iterator(chunk_size=2000):
            writer.writerow([send.phone, send.contact.display_name, send.variant, send.status,
                             send.error_code or "", send.sent_at or "", send.delivered_at or "",
                             send.read_at or "", send.replied_at or "", send.clicked_at or "",
                             send.converted])
        return response

    # --- lifecycle: the page's buttons and the list's actions call the same services ---

    LIFECYCLE = {
        "launch": (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED),
        "pause": (CampaignStatus.SENDING, CampaignStatus.SCHEDULED),
        "resume": (CampaignStatus.PAUSED,),
        "cancel": (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED, CampaignStatus.SENDING,
                   CampaignStatus.PAUSED),
    }

    def _launch_one(self, request, campaign: Campaign) -> bool:
        try:
            services.campaign_launch(campaign=campaign, actor=request.user)
        except services.LaunchBlocked as exc:
            self.message_user(request, _("“%(name)s” was not launched: %(why)s")
                              % {"name": campaign, "why": exc}, messages.ERROR)
            return False
        campaign.refresh_from_db()
        # The dashboard's campaign panel and counts follow in the background.
        enqueue(dashboard_refresh_task.name)
        return campaign.status != CampaignStatus.DRAFT

    def _do(self, request, campaign: Campaign, step: str) -> bool:
        if step == "launch":
            return self._launch_one(request, campaign)
        if step == "pause":
            return services.campaign_pause(campaign=campaign, reason=_(
                "Paused by %(user)s.") % {"user": request.user})
        if step == "resume":
            return services.campaign_resume(campaign=campaign)
        services.campaign_cancel(campaign=campaign, reason=_("Cancelled by %(user)s.")
                                 % {"user": request.user})
        return True

    DONE = {
        "launch": lambda n, total: ngettext("%(done)d of %(total)d campaign launched.",
                                            "%(done)d of %(total)d campaigns launched.", total),
        "pause": lambda n, total: ngettext("%(done)d of %(total)d campaign paused.",
                                           "%(done)d of %(total)d campaigns paused.", total),
        "resume": lambda n, total: ngettext("%(done)d of %(total)d campaign resumed.",
                                            "%(done)d of %(total)d campaigns resumed.", total),
        "cancel": lambda n, total: ngettext("%(done)d of %(total)d campaign cancelled.",
                                            "%(done)d of %(total)d campaigns cancelled.", total),
    }

    def _bulk(self, request, queryset, step: str) -> None:
        campaigns = list(queryset)
        done = sum(bool(self._do(request, c, step)) for c in campaigns)
        self.message_user(request, self.DONE[step](done, len(campaigns))
                          % {"done": done, "total": len(campaigns)})

    @admin.action(description=_("Launch selected campaigns"), permissions=["change"])
    def launch(self, request, queryset):
        self._bulk(request, queryset, "launch")

    @admin.action(description=_("Pause selected campaigns"), permissions=["change"])
    def pause(self, request, queryset):
        self._bulk(request, queryset, "pause")

    @admin.action(description=_("Resume selected campaigns"), permissions=["change"])
    def resume(self, request, queryset):
        self._bulk(request, queryset, "resume")

    @admin.action(description=_("Cancel selected campaigns"), permissions=["change"])
    def cancel(self, request, queryset):
        self._bulk(request, queryset, "cancel")

    def lifecycle_view(self, request: HttpRequest, pk: int, step: str) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, campaign):
            raise PermissionDenied(_("Only marketers launch, pause, resume or cancel "
                                     "campaigns."))
        if campaign.status not in self.LIFECYCLE[step]:
            self.message_user(request, _("“%(name)s” is %(status)s: nothing to do.")
                              % {"name": campaign, "status": campaign.get_status_display()},
                              messages.WARNING)
        elif self._do(request, campaign, step):
            self.message_user(request, {
                "launch": _("“%(name)s” is launched."), "pause": _("“%(name)s” is paused."),
                "resume": _("“%(name)s” sends again."), "cancel": _("“%(name)s” is cancelled."),
            }[step] % {"name": campaign}, messages.SUCCESS)
        return redirect(reverse("admin:campaigns_campaign_change", args=[pk]))

    def estimate_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The live audience panel (HTML fragment) for the audience typed in the form."""
        campaign = get_object_or_404(Campaign, pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        for name in ("audience", "suppression"):
            if name in request.GET:
                setattr(campaign, name, request.GET[name])
        return TemplateResponse(request, "admin/campaigns/campaign/prelaunch.html",
                                self._prelaunch_context(campaign))

    @staticmethod
    def _prelaunch_context(campaign: Campaign) -> dict:
        if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
            return {"prelaunch": False}
        estimate = launch_estimate(campaign)
        checks = [] if estimate.error else services.campaign_checks(campaign=campaign)
        night = None if estimate.error else night_recipients(campaign)
        return {
            "prelaunch": True, "estimate": estimate,
            "excluded": sorted(((exclusion_label(k), v) for k, v in estimate.excluded.items()),
                               key=lambda kv: -kv[1]),
            "left_out": sum(estimate.excluded.values()),
            "checks": checks, "blocked": any(c.level == "block" for c in checks),
            "night": night, "reading": reading_spread(campaign, estimate),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        campaign = self.get_object(request, object_id) if str(object_id).isdigit() else None
        if campaign is not None:
            extra_context.update(self._prelaunch_context(campaign))
            extra_context["lifecycle"] = [
                step for step, states in self.LIFECYCLE.items() if campaign.status in states
            ] if self.has_change_permission(request, campaign) else []
        return super().change_view(request, object_id, form_url, extra_context)


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    fields = ["status", "occurred_at", "error_code", "received_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Send)
class SendAdmin(ReadOnlyAdmin):
    list_display = ["phone", "contact", "campaign", "variant", "status", "error",
                    "sent_at", "delivered_at", "read_at", "replied_at", "clicked_at"]

    @admin.display(description=_("error"), ordering="error_code")
    def error(self, obj: Send) -> str:
        return error_meaning(obj.error_code) if obj.error_code is not None else ""
    list_filter = ["status", "variant", "error_code", "campaign"]
    search_fields = ["phone", "wamid"]
    list_select_related = ["contact", "campaign"]
    inlines = [StatusEventInline]


@admin.register(Exclusion)
class ExclusionAdmin(ReadOnlyAdmin):
    list_display = ["contact", "campaign", "reason_text", "created_at"]

    @admin.display(description=_("reason"), ordering="reason")
    def reason_text(self, obj: Exclusion) -> str:
        return exclusion_label(obj.reason)
    list_filter = ["reason", "campaign"]
    list_select_related = ["contact", "campaign"]
    search_fields = ["contact__phone", "contact__last_name"]


@admin.register(Sender)
class SenderAdmin(admin.ModelAdmin):
    list_display = ["phone_number_id", "stopped", "stopped_reason"]
    readonly_fields = ["tat"]
    actions = ["resume_sending"]

    @admin.action(description=_("Resume sending from these numbers"))
    def resume_sending(self, request, queryset):
        done = sum(services.sender_resume(phone_number_id=s.phone_number_id) for s in queryset)
        self.message_user(request, ngettext("%d number resumed.", "%d numbers resumed.", done)
                          % done)


@admin.register(InboundMessage)
class InboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["contact", "text", "action", "send", "occurred_at"]
    list_select_related = ["contact", "send"]
    search_fields = ["text", "contact__phone"]


@admin.register(OptOut)
class OptOutAdmin(ReadOnlyAdmin):
    list_display = ["contact", "source", "detail", "resumed", "created_at"]
    list_filter = ["source", "resumed"]
    list_select_related = ["contact"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    deletable = True  # staff dismiss an alert once it is dealt with
    list_display = ["created_at", "campaign", "meaning", "message"]

    @admin.display(description=_("what it means"), ordering="code")
    def meaning(self, obj: Alert) -> str:
        return error_meaning(obj.code) if obj.code is not None else "—"


class WebhookStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("waiting", _("waiting")), ("applied", _("applied")),
                ("set_aside", _("set aside"))]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return queryset.filter(processed_at__isnull=True)
        if self.value() == "applied":
            return queryset.filter(processed_at__isnull=False, error="")
        if self.value() == "set_aside":
            return queryset.filter(processed_at__isnull=False).exclude(error="")
        return queryset


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "received_at", "state", "processed_at", "attempts", "retry_at",
                    "error"]
    list_filter = [WebhookStateFilter]
    exclude = ["body"]

    @admin.display(description=_("state"))
    def state(self, obj: WebhookDelivery) -> str:
        if obj.processed_at is None:
            return _("waiting")
        return _("set aside") if obj.error else _("applied")


@admin.register(WebhookDeadLetter)
class WebhookDeadLetterAdmin(ReadOnlyAdmin):
    """Webhooks set aside because of their content, with what was wrong; replay after a fix."""

    list_display = ["id", "received_at", "processed_at", "problem", "size"]
    fields = ["received_at", "processed_at", "problem", "size"]
    readonly_fields = fields
    search_fields = ["error"]
    actions = ["replay"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(processed_at__isnull=False).exclude(
            error="").defer("body").annotate(body_size=Length("body"))

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm("campaigns.change_webhookdeadletter")

    @admin.display(description=_("what was wrong"))
    def problem(self, obj: WebhookDelivery) -> str:
        return obj.error

    @admin.display(description=_("size"))
    def size(self, obj: WebhookDelivery) -> str:
        return ngettext("%(n)s byte", "%(n)s bytes", obj.body_size) % {
            "n": formats.localize(obj.body_size)}

    @admin.action(description=_("Replay selected webhooks (after fixing the cause)"),
                  permissions=["replay"])
    def replay(self, request, queryset):
        done = webhooks_replay(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, ngettext(
            "%(n)d webhook queued again; it is applied within seconds, or set aside again "
            "with its reason.",
            "%(n)d webhooks queued again; they are applied within seconds, or set aside "
            "again with their reasons.", done) % {"n": done})


admin.site.register(OptOutKeyword, list_display=["word", "active"], list_editable=["active"])
admin.site.register(DeletionKeyword, list_display=["word", "active"], list_editable=["active"])


@admin.register(DeletionRequest)
class DeletionRequestAdmin(ReadOnlyAdmin):
    """Customers who asked by message to be erased: waiting for their confirmation, or
    confirmed (then erased on a worker). The erasure itself is the contact's action."""

    list_display = ["contact", "requested_at", "confirmation_sent_at", "confirmed_at"]
    raw_id_fields = ["contact"]
admin.site.register(KeywordRule, list_display=["name", "keywords", "tag", "active"])
admin.site.register(SensitiveWord, list_display=["word", "blocks"])


# --- the contact's timeline: the messages they got and the replies they sent ----------


def messages_timeline(contact: Contact, before: Cursor | None, limit: int) -> list[Entry]:
    sends = Send.objects.filter(contact=contact).select_related("campaign").annotate(
        at=Coalesce("sent_at", "created_at"))
    inbound = InboundMessage.objects.filter(contact=contact)
    if before is not None:
        sends = sends.filter(before.q("message", "at"))
        inbound = inbound.filter(before.q("reply", "occurred_at"))
    entries = []
    for send in sends.order_by("-at", "-id")[:limit]:
        steps = [(_("sent"), send.sent_at), (_("delivered"), send.delivered_at),
                 (_("read"), send.read_at), (_("replied"), send.replied_at)]
        detail = " · ".join(f"{label} {formats.date_format(timezone.localtime(at), 'H:i')}"
                            for label, at in steps if at)
        if send.error_code is not None:
            detail = error_meaning(send.error_code)
        entries.append(Entry(send.at, "message", _("Message of “%(campaign)s”: %(status)s") % {
            "campaign": send.campaign.name, "status": status_label(send.status)}, detail,
            id=send.pk))
    for message in inbound.order_by("-occurred_at", "-id")[:limit]:
        entries.append(Entry(message.occurred_at, "reply", _("Wrote: %(text)s") % {
            "text": message.text[:200] or message.kind}, message.action, id=message.pk))
    return entries


timeline_sources.register("messages", messages_timeline)


def _last_launch():
    return (Campaign.objects.filter(launched_at__isnull=False).order_by("-launched_at")
            .values_list("launched_at", flat=True).first())


# The dashboard's campaign panel is recomputed once a campaign launched after its snapshot.
register_change_probe("campaigns", _last_launch)


class SendingPolicyForm(forms.ModelForm):
    class Meta:
        model = SendingPolicy
        fields = ["cap_per_day", "cap_per_week", "quiet_start", "quiet_end"]

    def clean(self):
        data = super().clean()
        if (data.get("quiet_start") is None) != (data.get("quiet_end") is None):
            self.add_error("quiet_end", _("Give both ends of the quiet hours, or neither."))
        day, week = data.get("cap_per_day"), data.get("cap_per_week")
        if day is not None and week is not None and week < day:
            self.add_error("cap_per_week", _("The weekly cap cannot be lower than the daily "
                                             "cap."))
        return data


@admin.register(SendingPolicy)
class SendingPolicyAdmin(admin.ModelAdmin):
    """One row: the list goes straight to it (made on first visit)."""

    form = SendingPolicyForm
    readonly_fields = ["in_force"]

    @admin.display(description=_("in force now"))
    def in_force(self, obj) -> str:
        policy = sending_policy()
        quiet = (f"{policy.quiet_start:%H:%M}–{policy.quiet_end:%H:%M}"
                 if policy.quiet_start and policy.quiet_end else _("none"))
        return _("At most %(day)d marketing messages per contact a day and %(week)d in 7 days; "
                 "default quiet hours: %(quiet)s.") % {"day": policy.cap_per_day,
                                                       "week": policy.cap_per_week,
                                                       "quiet": quiet}

    def changelist_view(self, request, extra_context=None):
        SendingPolicy.objects.get_or_create(pk=1)
        return redirect("admin:campaigns_sendingpolicy_change", 1)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        obj.pk = 1
        super().save_model(request, obj, form, change)
        sending_policy_changed()
