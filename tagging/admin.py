from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from guardian.admin import GuardedModelAdmin

from crm.admin import ContactAdmin
from crm.models import Contact
from tagging.audience_admin import AudienceAdminMixin
from tagging.governance_admin import DimensionGovernanceMixin, TagGovernanceMixin, VersionLogMixin
from tagging.imports.admin import ContactExportMixin  # imports & exports (issue 5)
from tagging.insight.admin import InsightContactAdminMixin
from tagging.models import AssignmentHistory, Dimension, Tag, TagVersion
from tagging.profile_admin import ContactTagProfileMixin
from tagging.selectors import contacts_with_tags, dimensions_with_counts, tags_with_counts


def chip(tag: Tag) -> str:
    """A tag as a coloured chip: dimension colour, symbol, name."""
    return format_html(
        '<span class="tw-chip" style="--tw-colour:{}" title="{}">{}{}</span>',
        tag.display_colour,
        tag.dimension.name,
        f"{tag.symbol} " if tag.symbol else "",
        tag.name,
    )


def chips(tags) -> str:
    return format_html_join("", "{}", ((chip(t),) for t in tags))


@admin.register(Dimension)
class DimensionAdmin(DimensionGovernanceMixin, GuardedModelAdmin):
    list_display = ["name", "colour_swatch", "single_choice", "tag_count", "holders", "order",
                    "is_archived"]
    list_editable = ["order"]
    list_filter = ["is_archived"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return dimensions_with_counts()

    @admin.display(description=_("colour"))
    def colour_swatch(self, obj: Dimension) -> str:
        return format_html('<span class="tw-chip" style="--tw-colour:{}">{}</span>',
                           obj.colour, obj.colour)

    @admin.display(description=_("tags"), ordering="tag_count")
    def tag_count(self, obj: Dimension) -> int:
        return obj.tag_count

    @admin.display(description=_("tag holdings"), ordering="holders")
    def holders(self, obj: Dimension) -> int:
        return obj.holders


@admin.register(Tag)
class TagAdmin(TagGovernanceMixin, admin.ModelAdmin):
    list_display = ["tag_chip", "dimension", "kind", "holders", "lifetime_days", "is_archived"]
    list_filter = ["dimension", "kind", "is_archived"]
    search_fields = ["name", "name_key"]
    list_select_related = ["dimension"]
    autocomplete_fields = []

    def get_queryset(self, request):
        return tags_with_counts()

    @admin.display(description=_("tag"), ordering="name")
    def tag_chip(self, obj: Tag) -> str:
        return chip(obj)

    @admin.display(description=_("contacts"), ordering="holders")
    def holders(self, obj: Tag) -> int:
        return obj.holders


@admin.register(AssignmentHistory)
class AssignmentHistoryAdmin(admin.ModelAdmin):
    list_display = ["at", "contact", "tag", "action", "reason", "replaced", "source_ref", "actor"]
    list_filter = ["action", "reason"]
    list_select_related = ["contact", "tag", "actor"]
    show_full_result_count = False
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TagVersion)
class TagVersionAdmin(VersionLogMixin, AssignmentHistoryAdmin):
    list_display = ["at", "action", "object_type", "object_name", "actor", "reason"]
    list_filter = ["action", "object_type"]
    list_select_related = ["actor"]
    search_fields = ["object_name", "reason"]


admin.site.unregister(Contact)


@admin.register(Contact)
class TaggedContactAdmin(AudienceAdminMixin, ContactTagProfileMixin, InsightContactAdminMixin,
                         ContactExportMixin, ContactAdmin):
    """The contact admin with tags: chips in the list and on the profile."""

    list_display = ["phone", "display_name", "tag_chips", "consent_status", "country",
                    "last_interaction_at"]

    def get_queryset(self, request):
        return contacts_with_tags(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        return ["tag_chips", *super().get_readonly_fields(request, obj)]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return [(_("Tags"), {"fields": ["tag_chips"]}), *fieldsets] if obj else fieldsets

    @admin.display(description=_("tags"))
    def tag_chips(self, obj: Contact) -> str:
        return chips(a.tag for a in obj.tag_assignments.all())
