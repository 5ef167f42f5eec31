"""Who may do what with tags: every role × every operation, through admin, bulk and service.

No role gains more than it was given, a refusal says what was refused, and a
refused request changes nothing at all.
"""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from guardian.shortcuts import assign_perm

from crm.models import Contact
from tagging.models import AssignmentHistory, Dimension, Tag, TagAssignment, TagVersion
from tagging.permissions import TagPermissionDenied
from tagging.services import tags_change
from tagging.vocabulary import dimension_archive, dimension_restore
from tests.factories import UserFactory
from tests.tagging.governance import ROLE_NAMES, user_in_role

pytestmark = pytest.mark.django_db

# Expected outcome per role: may define the vocabulary / may apply in the granted
# dimension / may apply in a dimension the agent was not granted.
MAY_DEFINE = {"superuser": True, "tag_admin": True, "marketer": False, "agent": False,
              "staff": False}
MAY_APPLY_GRANTED = {"superuser": True, "tag_admin": False, "marketer": True, "agent": True,
                     "staff": False}
MAY_APPLY_OTHER = {"superuser": True, "tag_admin": False, "marketer": True, "agent": False,
                   "staff": False}


@pytest.fixture
def world(make_dimension, make_tag, make_contact):
    granted = make_dimension(name="Interesse")
    other = make_dimension(name="Kaufkraft")
    return {
        "granted": granted,
        "other": other,
        "granted_tag": make_tag(dimension=granted, name="Interesse-Sport"),
        "granted_held": make_tag(dimension=granted, name="Interesse-Reisen"),
        "other_tag": make_tag(dimension=other, name="VIP"),
        "other_held": make_tag(dimension=other, name="SVIP"),
        "contact": make_contact(),
    }


@pytest.fixture
def as_role(client, world):
    def _login(role):
        user = user_in_role(role, allowed_dimension=world["granted"])
        client.force_login(user)
        return user
    return _login


def tag_form(tag, **changes):
    data = {"dimension": tag.dimension_id, "name": tag.name, "colour": tag.colour,
            "symbol": tag.symbol, "description": tag.description, "kind": tag.kind,
            "lifetime_days": "", "reason": ""}
    return {**data, **changes}


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_create_tag_in_admin(client, as_role, world, role):
    as_role(role)
    response = client.post(reverse("admin:tagging_tag_add"), {
        "dimension": world["granted"].pk, "name": "Interesse-Kochen", "colour": "",
        "symbol": "", "description": "", "kind": "static", "lifetime_days": "", "reason": ""})
    created = Tag.objects.filter(name="Interesse-Kochen").exists()
    assert created is MAY_DEFINE[role]
    assert response.status_code == (302 if MAY_DEFINE[role] else 403)
    assert TagVersion.objects.filter(action="created").exists() is MAY_DEFINE[role]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_rename_tag_in_admin(client, as_role, world, role):
    as_role(role)
    tag = world["granted_tag"]
    response = client.post(reverse("admin:tagging_tag_change", args=[tag.pk]),
                           tag_form(tag, name="Interesse-Fitness", reason="clearer"))
    tag.refresh_from_db()
    assert (tag.name == "Interesse-Fitness") is MAY_DEFINE[role]
    assert response.status_code == (302 if MAY_DEFINE[role] else 403)


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_delete_tag_in_admin(client, as_role, world, role):
    as_role(role)
    tag = world["granted_tag"]
    response = client.post(reverse("admin:tagging_tag_delete", args=[tag.pk]),
                           {"reason": "never used", "_delete": "1"})
    assert Tag.objects.filter(pk=tag.pk).exists() is not MAY_DEFINE[role]
    assert response.status_code == (302 if MAY_DEFINE[role] else 403)


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize("way", ["button", "action", "service"])
def test_archive_and_restore_a_dimension(client, as_role, world, role, way):
    user = as_role(role)
    dimension = world["granted"]
    allowed = MAY_DEFINE[role]  # Tag administrators and superusers only

    def archive():
        if way == "button":
            return client.post(reverse("admin:tagging_dimension_archive", args=[dimension.pk]),
                               {"reason": "season over"})
        if way == "action":
            return client.post(reverse("admin:tagging_dimension_changelist"), {
                "action": "archive_selected", ACTION_CHECKBOX_NAME: [dimension.pk],
                "confirm": "1", "reason": "season over"})
        return dimension_archive(dimension=dimension, actor=user, reason="season over")

    if way == "service":
        if allowed:
            assert archive().tags == ["Interesse-Reisen", "Interesse-Sport"]
        else:
            with pytest.raises(TagPermissionDenied, match="Interesse"):
                archive()
    else:
        response = archive()
        # Refused: 403, the login page (no admin access) or the list without the action.
        assert response.status_code in ((302,) if allowed else (200, 302, 403))
        if response.status_code == 200:
            form = response.context["action_form"]  # None: no action offered at all
            offered = [name for name, _label in form.fields["action"].choices] if form else []
            assert "archive_selected" not in offered
    archived = Dimension.objects.get(pk=dimension.pk).is_archived
    assert archived is allowed
    assert Tag.objects.filter(dimension=dimension, is_archived=True).exists() is allowed
    assert TagVersion.objects.filter(object_type="dimension", action="archived").exists() \
        is allowed
    if not allowed:
        dimension_archive(dimension=dimension, actor=None, reason="by the system")
        with pytest.raises(TagPermissionDenied):
            dimension_restore(dimension=dimension, actor=user)
        refused = client.post(reverse("admin:tagging_dimension_restore", args=[dimension.pk]))
        assert refused.status_code in (302, 403)  # 302: no admin access to dimensions at all
        assert Dimension.objects.get(pk=dimension.pk).is_archived


def test_a_per_dimension_define_grant_does_not_archive_the_dimension(client, world):
    user = UserFactory(is_staff=True)
    assign_perm("tagging.define_dimension_tags", user, world["granted"])
    client.force_login(user)

    with pytest.raises(TagPermissionDenied, match="Only a tag administrator"):
        dimension_archive(dimension=world["granted"], actor=user, reason="x")
    page = client.post(reverse("admin:tagging_dimension_archive", args=[world["granted"].pk]),
                       {"reason": "x"})

    assert page.status_code in (302, 403)
    assert not Dimension.objects.get(pk=world["granted"].pk).is_archived
    # Its tags, one by one, stay theirs to archive.
    from tagging.vocabulary import tag_archive
    assert tag_archive(tag=world["granted_tag"], actor=user, reason="x") is True


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize("dimension", ["granted", "other"])
def test_apply_and_remove_on_the_contact_page(client, as_role, world, role, dimension):
    as_role(role)
    contact = world["contact"]
    held = world[f"{dimension}_held"]
    tags_change(contacts=[contact], add=[held])
    allowed = (MAY_APPLY_GRANTED if dimension == "granted" else MAY_APPLY_OTHER)[role]
    url = reverse("admin:crm_contact_tag_change", args=[contact.pk])

    added = client.post(url, {"op": "add", "tag": world[f"{dimension}_tag"].pk})
    removed = client.post(url, {"op": "remove", "tag": held.pk})

    names = set(contact.tags.values_list("name", flat=True))
    if allowed:
        assert (added.status_code, removed.status_code) == (200, 200)
        assert names == {world[f"{dimension}_tag"].name}
    else:
        assert (added.status_code, removed.status_code) == (403, 403)
        assert names == {held.name}
        assert "error" in added.json()


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_service_and_bulk_change_refuse_whole_request(world, role, make_contact):
    user = user_in_role(role, allowed_dimension=world["granted"])
    contacts = [world["contact"], *make_contact.create_batch(4)]
    before = AssignmentHistory.objects.count()

    def bulk():
        return tags_change(contacts=Contact.objects.all(), actor=user,
                           add=[world["granted_tag"], world["other_tag"]])

    if MAY_APPLY_GRANTED[role] and MAY_APPLY_OTHER[role]:
        assert bulk().added == 2 * len(contacts)
        return
    with pytest.raises(TagPermissionDenied) as refused:
        bulk()
    # The refusal names what was refused and nothing was written, not even the
    # tags the user may apply.
    assert "VIP" in str(refused.value)
    assert TagAssignment.objects.count() == 0
    assert AssignmentHistory.objects.count() == before
    if MAY_APPLY_GRANTED[role]:
        result = tags_change(contacts=contacts, add=[world["granted_tag"]], actor=user)
        assert result.added == len(contacts)


def test_a_per_dimension_define_grant_covers_that_dimension_only(client, world):
    user = UserFactory(is_staff=True)
    assign_perm("tagging.define_dimension_tags", user, world["granted"])
    client.force_login(user)

    ok = client.post(reverse("admin:tagging_tag_add"), {
        "dimension": world["granted"].pk, "name": "Interesse-Kochen", "kind": "static",
        "colour": "", "symbol": "", "description": "", "lifetime_days": "", "reason": ""})
    elsewhere = client.post(reverse("admin:tagging_tag_add"), {
        "dimension": world["other"].pk, "name": "Kaufkraft-Neu", "kind": "static",
        "colour": "", "symbol": "", "description": "", "lifetime_days": "", "reason": ""})
    rename_other = client.post(
        reverse("admin:tagging_tag_change", args=[world["other_tag"].pk]),
        tag_form(world["other_tag"], name="VIP-Kunde", reason="x"))
    move_out = client.post(
        reverse("admin:tagging_tag_change", args=[world["granted_tag"].pk]),
        tag_form(world["granted_tag"], dimension=world["other"].pk))

    assert ok.status_code == 302
    assert Tag.objects.filter(name="Interesse-Kochen", dimension=world["granted"]).exists()
    assert elsewhere.status_code == 200  # the form refuses the dimension it may not use
    assert "Select a valid choice" in elsewhere.content.decode()
    assert not Tag.objects.filter(name="Kaufkraft-Neu").exists()
    assert rename_other.status_code == 403
    assert move_out.status_code == 200
    world["granted_tag"].refresh_from_db()
    assert world["granted_tag"].dimension == world["granted"]
    # Defining tags is not applying them.
    with pytest.raises(TagPermissionDenied):
        tags_change(contacts=[world["contact"]], add=[world["granted_tag"]], actor=user)


def test_profile_shows_forbidden_tags_without_a_remove_button(client, world):
    agent = user_in_role("agent", allowed_dimension=world["granted"])
    tags_change(contacts=[world["contact"]], add=[world["granted_held"], world["other_held"]])
    client.force_login(agent)
    body = client.get(reverse("admin:crm_contact_change", args=[world["contact"].pk])).content \
        .decode()
    assert "SVIP" in body and "Interesse-Reisen" in body
    assert f'data-tw-remove="{world["granted_held"].pk}"' in body
    assert f'data-tw-remove="{world["other_held"].pk}"' not in body


def test_grant_from_the_dimension_object_permissions_page(client, superuser, world):
    agent = user_in_role("agent")
    client.force_login(superuser)
    dimension = world["other"]
    page = client.get(reverse("admin:tagging_dimension_permissions", args=[dimension.pk]))
    assert page.status_code == 200
    granted = client.post(
        reverse("admin:tagging_dimension_permissions_manage_user",
                args=[dimension.pk, agent.pk]),
        {"permissions": ["apply_dimension_tags"]})
    assert granted.status_code == 302

    result = tags_change(contacts=[world["contact"]], add=[world["other_tag"]],
                         actor=type(agent).objects.get(pk=agent.pk))
    assert result.added == 1
    with pytest.raises(TagPermissionDenied):
        tags_change(contacts=[world["contact"]], add=[world["granted_tag"]], actor=agent)
