"""Admin: the Chatwoot connection with the addresses to paste into Chatwoot and the label
names of the synced tags; what sync could not do."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from campaigns.chatwoot.labels import label_map
from campaigns.chatwoot.models import ChatwootConnection, SyncNote


class ChatwootConnectionForm(forms.ModelForm):
    class Meta:
        model = ChatwootConnection
        fields = ["name", "base_url", "account_id", "api_access_token", "dimensions",
                  "sync_user", "webhook_token", "webhook_secret", "active"]
        widgets = {"api_access_token": forms.PasswordInput(render_value=True),
                   "webhook_secret": forms.PasswordInput(render_value=True)}


@admin.register(ChatwootConnection)
class ChatwootConnectionAdmin(admin.ModelAdmin):
    form = ChatwootConnectionForm
    list_display = ["name", "base_url", "account_id", "active"]
    filter_horizontal = ["dimensions"]
    readonly_fields = ["addresses", "label_names"]
    autocomplete_fields = ["sync_user"]

    @admin.display(description=_("addresses for Chatwoot"))
    def addresses(self, obj: ChatwootConnection) -> str:
        sidebar = reverse("chatwoot:sidebar")
        if not obj.pk:
            return format_html("{}: <code>{}</code><br>{}", _("Dashboard App URL"), sidebar,
                               _("Save first; the webhook address appears here."))
        webhook = reverse("chatwoot:webhook", args=[obj.webhook_token])
        return format_html(
            '{}: <code id="chatwoot-sidebar-path">{}</code><br>'
            '{}: <code id="chatwoot-webhook-path">{}</code> ({})<br>{}',
            _("Dashboard App URL"), sidebar, _("Webhook URL"), webhook,
            _("after your Tagwerk address, e.g. https://tagwerk.example.com"),
            _("Webhook events: Contact created, Contact updated, Conversation created, "
              "Conversation updated."))

    @admin.display(description=_("Tagwerk tag → Chatwoot label"))
    def label_names(self, obj: ChatwootConnection) -> str:
        if not obj.pk:
            return _("Choose the synced dimensions and save; their labels appear here.")
        rows = [(tag.dimension.name, tag.name, label)
                for label, tag in sorted(label_map(obj).items(),
                                         key=lambda item: (item[1].dimension.name, item[1].name))]
        if not rows:
            return _("No dimension is synced.")
        return format_html('<table id="chatwoot-labels"><tr><th>{}</th><th>{}</th><th>{}</th>'
                           "</tr>{}</table>", _("dimension"), _("tag"), _("label"),
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td><code>{}</code>"
                                                "</td></tr>", rows))


@admin.register(SyncNote)
class SyncNoteAdmin(admin.ModelAdmin):
    list_display = ["at", "connection", "contact", "agent", "message"]
    list_filter = ["connection"]
    list_select_related = ["connection", "contact"]
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
