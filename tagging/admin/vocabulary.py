"""The vocabulary in the admin: dimensions, tags, the version log and assignment history."""

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from guardian.admin import GroupManage, GuardedModelAdmin, UserManage

from crm.admin import ReadOnlyAdmin
from tagging.admin.contacts import chip
from tagging.admin.governance import DimensionGovernanceMixin, TagGovernanceMixin, VersionLogMixin
from tagging.models import AssignmentHistory, Dimension, Tag, TagVersion
from tagging.selectors import dimensions_with_counts, tags_with_counts


class GrantUserForm(UserManage):
    """Guardian's user picker, with help a tag administrator can act on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["user"]
        field.label = _("User name")
        field.help_text = _("The login name of the agent or marketer who should get rights on "
                            "this dimension, e.g. “anna.chen”.")
        field.error_messages["does_not_exist"] = _(
            "Nobody logs in with this name. Check the spelling under Users.")


class GrantGroupForm(GroupManage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["group"]
        field.label = _("Role")
        field.help_text = _("A role (group) such as Agents or Marketers.")
        field.error_messages["does_not_exist"] = _("There is no role with this name.")


@admin.register(Dimension)
class DimensionAdmin(DimensionGovernanceMixin, GuardedModelAdmin):
    list_display = ["name", "colour_swatch", "single_choice", "tag_count", "holders", "order",
                    "is_archived"]
    list_editable = ["order"]
    list_filter = ["is_archived"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return dimensions_with_counts()

    def get_obj_perms_user_select_form(self, request):
        return GrantUserForm

    def get_obj_perms_group_select_form(self, request):
        return GrantGroupForm

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
class AssignmentHistoryAdmin(ReadOnlyAdmin):
    list_display = ["at", "contact", "tag", "action", "reason", "replaced", "source_ref", "actor"]
    list_filter = ["action", "reason"]
    list_select_related = ["contact", "tag", "actor"]
    show_full_result_count = False
    date_hierarchy = "at"


@admin.register(TagVersion)
class TagVersionAdmin(VersionLogMixin, AssignmentHistoryAdmin):
    list_display = ["at", "action", "object_type", "object_name", "actor", "reason"]
    list_filter = ["action", "object_type"]
    list_select_related = ["actor"]
    search_fields = ["object_name", "reason"]
