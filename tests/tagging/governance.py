"""Users in the governance roles, for the tests of tags governance."""

from __future__ import annotations

from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from tagging.roles import AGENTS, MARKETERS, TAG_ADMINISTRATORS, roles_sync
from tests.factories import UserFactory

ROLE_NAMES = ["superuser", "tag_admin", "marketer", "agent", "staff"]


def user_in_role(role: str, *, allowed_dimension=None, **kwargs):
    """A staff user of ``role``; an agent is granted ``allowed_dimension`` only."""
    roles_sync()  # idempotent; groups may have been flushed by a transactional test
    user = UserFactory(is_staff=True, is_superuser=role == "superuser", **kwargs)
    group = {"tag_admin": TAG_ADMINISTRATORS, "marketer": MARKETERS, "agent": AGENTS}.get(role)
    if group:
        user.groups.add(Group.objects.get(name=group))
    if role == "agent" and allowed_dimension is not None:
        assign_perm("tagging.apply_dimension_tags", user, allowed_dimension)
    return user
