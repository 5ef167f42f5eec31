"""Admin: templates with preview, campaigns with checks, live report, actions and CSV export."""

from __future__ import annotations

import csv

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.db.models import Count, Q
from django.db.models.functions import Length
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
from campaigns.models import (
    Alert,
    Campaign,
    CampaignStatus,
    Exclusion,
    InboundMessage,
    KeywordRule,
    OptOut,
    OptOutKeyword,
    Send,
    Sender,
    SendStatus,
    SensitiveWord,
    StatusEvent,
    Template,
    WebhookDeadLetter,
    WebhookDelivery,
)
from campaigns.schedule import send_time_suggest
from campaigns.selectors import campaign_report, opt_out_words, quiet_hours_state, recipients
from campaigns.webhooks import webhooks_replay
from campaigns.zones import time_zone_choices
from crm.models import Contact
from tagging.audiences.language import SegmentError, parse


def _pct(value) -> str:
    return "–" if value is None else f"{value:.1%}"


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
                  "quiet_start", "quiet_end", "rate_per_second", "phone_number_id",
                  "ab_config", "followup_template", "followup_after_days",
                  "followup_skip_read"]
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
    list_display = ["name", "status", "recipients_count", "sent_count", "delivery",
                    "read", "reply", "launched_at"]
    list_filter = ["status"]
    search_fields = ["name"]
    actions = ["launch", "pause", "resume", "cancel"]
    readonly_fields = ["status", "status_message", "quiet_state", "launched_at",
                       "finished_at", "ab_winner", "report", "checks"]
    fieldsets = [
        (None, {"fields": ["name", "template", "audience", "suppression", "scheduled_at"]}),
        (_("Sending"), {"fields": ["time_zone", "quiet_start", "quiet_end", "rate_per_second",
                                   "phone_number_id"]}),
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
            (_("failed"), ", ".join(f"{k}: {v}" for k, v in r["failed"].items()) or "0"),
            (_("limited (131049), retried later"), r["limited"]),
            (_("excluded"), ", ".join(f"{k}: {v}" for k, v in r["excluded"].items()) or "0"),
            (_("conversions"), f"{r['conversions']} ({_pct(r['conversion_rate'])})"),
            (_("revenue"), r["revenue"]),
        ]
        html = format_html('<table class="tw-report" id="campaign-report">{}</table>',
                           format_html_join("", '<tr><th>{}</th><td data-key="{}">{}</td></tr>',
                                            ((k, k, v) for k, v in rows)))
        for variant, row in (r.get("variants") or {}).items():
            html += format_html(
                "<p>{} {}: {} sent, {} delivered, read {}, replied {}</p>", _("Variant"),
                variant, row["sent"], row["delivered"], _pct(row["read_rate"]),
                _pct(row["reply_rate"]))
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
        return [path("<int:pk>/export/", self.admin_site.admin_view(self.export),
                     name="campaigns_campaign_export"), *super().get_urls()]

    def export(self, request: HttpRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(Campaign, pk=pk)
        if not self.has_view_permission(request, campaign):
            return HttpResponse(status=403)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{pk}.csv"'
        writer = csv.writer(response)
        writer.writerow(["phone", "name", "variant", "status", "error_code", "sent_at",
                         "delivered_at", "read_at", "replied_at", "converted"])
        for send in recipients(campaign).iterator(chunk_size=2000):
            writer.writerow([send.phone, send.contact.display_name, send.variant, send.status,
                             send.error_code or "", send.sent_at or "", send.delivered_at or "",
                             send.read_at or "", send.replied_at or "", send.converted])
        return response

    def _report(self, request, done: int, total: int, verb: str) -> None:
        self.message_user(request, ngettext("%(done)d of %(total)d campaign %(verb)s.",
                                            "%(done)d of %(total)d campaigns %(verb)s.", total)
                          % {"done": done, "total": total, "verb": verb})

    @admin.action(description=_("Launch selected campaigns"))
    def launch(self, request, queryset):
        done = 0
        for campaign in queryset:
            try:
                services.campaign_launch(campaign=campaign, actor=request.user)
            except services.LaunchBlocked as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
                continue
            campaign.refresh_from_db()
            done += campaign.status != CampaignStatus.DRAFT
        self._report(request, done, queryset.count(), _("launched"))

    @admin.action(description=_("Pause selected campaigns"))
    def pause(self, request, queryset):
        done = sum(services.campaign_pause(campaign=c, reason=_("Paused by %(user)s.")
                                           % {"user": request.user}) for c in queryset)
        self._report(request, done, queryset.count(), _("paused"))

    @admin.action(description=_("Resume selected campaigns"))
    def resume(self, request, queryset):
        done = sum(services.campaign_resume(campaign=c) for c in queryset)
        self._report(request, done, queryset.count(), _("resumed"))

    @admin.action(description=_("Cancel selected campaigns"))
    def cancel(self, request, queryset):
        for campaign in queryset:
            services.campaign_cancel(campaign=campaign,
                                     reason=_("Cancelled by %(user)s.") % {"user": request.user})
        self._report(request, queryset.count(), queryset.count(), _("cancelled"))


class StatusEventInline(admin.TabularInline):
    model = StatusEvent
    fields = ["status", "occurred_at", "error_code", "received_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Send)
class SendAdmin(ReadOnlyAdmin):
    list_display = ["phone", "contact", "campaign", "variant", "status", "error_code",
                    "sent_at", "delivered_at", "read_at", "replied_at"]
    list_filter = ["status", "variant", "error_code", "campaign"]
    search_fields = ["phone", "wamid"]
    list_select_related = ["contact", "campaign"]
    inlines = [StatusEventInline]


@admin.register(Exclusion)
class ExclusionAdmin(ReadOnlyAdmin):
    list_display = ["contact", "campaign", "reason", "created_at"]
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
    list_display = ["created_at", "campaign", "code", "message"]


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
admin.site.register(KeywordRule, list_display=["name", "keywords", "tag", "active"])
admin.site.register(SensitiveWord, list_display=["word", "blocks"])
