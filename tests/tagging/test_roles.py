import pytest
from django.contrib.auth.models import Group

from tagging.roles import AGENTS, MARKETERS, TAG_ADMINISTRATORS, roles_sync

pytestmark = pytest.mark.django_db


def perms(group: str) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=group).permissions.select_related("content_type")}


def test_the_migration_created_three_groups_with_their_rights():
    roles_sync()  # what post_migrate does; repeating it must change nothing
    assert "tagging.define_dimension_tags" in perms(TAG_ADMINISTRATORS)
    assert {"tagging.add_tag", "tagging.change_tag", "tagging.delete_tag",
            "tagging.change_dimension"} <= perms(TAG_ADMINISTRATORS)
    assert "tagging.apply_dimension_tags" in perms(MARKETERS)
    assert not {"tagging.add_tag", "tagging.change_tag", "tagging.define_dimension_tags"} & \
        perms(MARKETERS)
    # Agents apply tags only through object permissions on single dimensions; they may
    # create a contact (the Chatwoot sidebar offers it for an unknown number).
    assert perms(AGENTS) == {"crm.view_contact", "crm.change_contact", "crm.add_contact"}


def test_sync_keeps_rights_an_operator_added_and_restores_removed_ones():
    group = Group.objects.get(name=MARKETERS)
    extra = Group.objects.get(name=TAG_ADMINISTRATORS).permissions.get(codename="view_tagversion")
    group.permissions.remove(group.permissions.get(codename="apply_dimension_tags"))
    group.permissions.add(extra)
    roles_sync()
    assert {"tagging.apply_dimension_tags", "tagging.view_tagversion"} <= perms(MARKETERS)
    assert Group.objects.filter(name=MARKETERS).count() == 1
