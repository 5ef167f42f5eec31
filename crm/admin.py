from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from crm.models import Contact, Event
from crm.selectors import contacts_search


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["phone", "display_name", "consent_status", "country", "last_interaction_at"]
    list_display_links = ["phone", "display_name"]
    list_filter = ["consent_status", "is_blocked", "country", "gender"]
    search_fields = ["phone"]  # the real search is get_search_results below
    search_help_text = _("A phone number in any writing (+49 170 …, 0170-…, 0049…) or the "
                         "beginning of a first or last name.")
    readonly_fields = [
        "country", "purchase_count", "total_spent", "first_purchase_at", "last_purchase_at",
        "last_interaction_at", "last_read_at", "last_reply_at", "created_at", "updated_at",
    ]
    show_full_result_count = False
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ["phone", ("salutation", "first_name", "last_name"), "external_label"]}),
        (_("Profile"), {"fields": [("gender", "birth_date"), ("language", "country", "city"),
                                   "occupation", "notes", "attributes"]}),
        (_("Consent"), {"fields": [("consent_status", "consent_source", "consent_at"),
                                   "is_blocked"]}),
        (_("Activity"), {"fields": [("purchase_count", "total_spent"),
                                    ("first_purchase_at", "last_purchase_at"),
                                    ("last_interaction_at", "last_read_at", "last_reply_at"),
                                    ("created_at", "updated_at")]}),
    ]

    @admin.display(description=_("name"), ordering="last_name")
    def display_name(self, obj: Contact) -> str:
        return obj.display_name

    def get_search_results(self, request, queryset, search_term):
        return contacts_search(search_term, queryset), False


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


# --- rules (issue 6): API tokens ------------------------------------------------------------

from django import forms  # noqa: E402
from django.contrib import messages  # noqa: E402
from django.utils.translation import ngettext  # noqa: E402

from crm.models import ApiScope, ApiToken  # noqa: E402
from crm.tokens import api_token_issue, api_tokens_revoke  # noqa: E402


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=ApiScope.choices, initial=[ApiScope.EVENTS_WRITE],
        widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "scopes"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "prefix", "scopes", "created_at", "created_by", "last_used_at",
                    "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["name", "scopes"] if obj is None else ["name", *self.readonly_fields, "scopes"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "scopes"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        obj.scopes, obj.created_by = form.cleaned_data["scopes"], request.user
        raw = api_token_issue(token=obj)
        self.message_user(request, _(
            "Token “%(name)s” created. Copy it now — it is not shown again: %(token)s")
            % {"name": obj.name, "token": raw}, messages.WARNING)

    @admin.action(description=_("Revoke selected tokens"), permissions=["change"])
    def revoke(self, request, queryset):
        count = api_tokens_revoke(tokens=queryset)
        self.message_user(request, ngettext("%(n)d token revoked.", "%(n)d tokens revoked.",
                                            count) % {"n": count})
