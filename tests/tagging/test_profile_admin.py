from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tagging.models import AssignmentHistory, Source, TagAssignment
from tagging.services import tags_change
from tests.tagging.governance import user_in_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(make_dimension, make_tag, make_contact):
    interest = make_dimension(name="Interesse", colour="#D6336C")
    stage = make_dimension(name="Kaufphase", single_choice=True)
    return {
        "interest": interest,
        "stage": stage,
        "sport": make_tag(dimension=interest, name="Interesse-Sport", symbol="⚽"),
        "travel": make_tag(dimension=interest, name="Interesse-Reisen"),
        "cart": make_tag(dimension=stage, name="Warenkorbabbruch"),
        "ordered": make_tag(dimension=stage, name="Bestellt"),
        "archived": make_tag(dimension=interest, name="Interesse-Alt", is_archived=True),
        "contact": make_contact(),
    }


def search(client, contact, q):
    url = reverse("admin:crm_contact_tag_search", args=[contact.pk])
    return client.get(url, {"q": q}).json()["results"]


def test_search_is_permission_filtered_and_skips_held_and_archived(client, setup):
    agent = user_in_role("agent", allowed_dimension=setup["interest"])
    client.force_login(agent)
    tags_change(contacts=[setup["contact"]], add=[setup["travel"]])
    assert [r["name"] for r in search(client, setup["contact"], "interesse")] == [
        "Interesse-Sport"]
    assert search(client, setup["contact"], "bestellt") == []  # a dimension not granted
    result = search(client, setup["contact"], "sport")[0]
    assert (result["symbol"], result["colour"], result["dimension"]) == (
        "⚽", "#D6336C", "Interesse")


def test_add_and_remove_write_history_and_return_the_new_panel(client, setup, superuser):
    client.force_login(superuser)
    contact = setup["contact"]
    url = reverse("admin:crm_contact_tag_change", args=[contact.pk])
    tags_change(contacts=[contact], add=[setup["cart"]])

    added = client.post(url, {"op": "add", "tag": setup["ordered"].pk}).json()

    assert "replaced" in added["message"] and added["replaced"] == 1
    chips = added["html"].split("tw-history")[0]
    assert "Bestellt" in chips and "Warenkorbabbruch" not in chips
    removed = client.post(url, {"op": "remove", "tag": setup["ordered"].pk}).json()
    assert removed["removed"] == 1 and "Bestellt" not in removed["html"].split("tw-history")[0]
    rows = AssignmentHistory.objects.filter(contact=contact, actor=superuser)
    assert sorted(rows.values_list("action", "reason", "replaced")) == [
        ("added", "manual", False), ("removed", "manual", False), ("removed", "manual", True)]


def test_bad_requests_get_clear_answers(client, setup, superuser):
    client.force_login(superuser)
    url = reverse("admin:crm_contact_tag_change", args=[setup["contact"].pk])
    assert client.post(url, {"op": "add", "tag": "abc"}).status_code == 400
    assert client.get(url).status_code == 405
    archived = client.post(url, {"op": "add", "tag": setup["archived"].pk})
    assert archived.status_code == 400 and "Restore" in archived.json()["error"]


def test_chips_are_grouped_by_dimension_and_show_their_origin(client, setup, superuser,
                                                              monkeypatch):
    monkeypatch.setattr("tagging.admin.contacts._REF_LABELS",
                        {"rule": {"7": "Hochwertiger Kunde"}.get})
    contact = setup["contact"]
    tags_change(contacts=[contact], add=[setup["sport"]], source=Source.RULE,
                source_ref="rule:7")
    tags_change(contacts=[contact], add=[setup["cart"]], actor=superuser)
    TagAssignment.objects.filter(tag=setup["sport"]).update(
        assigned_at=timezone.now() - timedelta(days=3))
    client.force_login(superuser)
    body = client.get(reverse("admin:crm_contact_change", args=[contact.pk])).content.decode()
    assert body.index('data-dimension="Interesse"') < body.index("⚽ Interesse-Sport") < \
        body.index('data-dimension="Kaufphase"') < body.index("Warenkorbabbruch")
    assert "rule: Hochwertiger Kunde, 3\xa0days ago" in body
    assert f"manual: {superuser.username}, 0\xa0minutes ago" in body
    assert 'class="tw-tag-search' in body
    # The read-only chips row of the plain contact admin is replaced by the panel.
    assert "field-tag_chips" not in body


def test_user_without_change_right_sees_tags_but_cannot_edit(client, setup):
    admin = user_in_role("tag_admin")  # may view contacts, not change them
    tags_change(contacts=[setup["contact"]], add=[setup["sport"]])
    client.force_login(admin)
    body = client.get(reverse("admin:crm_contact_change", args=[setup["contact"].pk])) \
        .content.decode()
    assert "Interesse-Sport" in body
    assert "data-tw-remove" not in body and "tw-tag-search" not in body


def test_profile_queries_do_not_grow_with_the_number_of_tags(client, make_contact, make_tag,
                                                             django_assert_max_num_queries):
    agent = user_in_role("agent")
    client.force_login(agent)
    contact = make_contact()
    url = reverse("admin:crm_contact_change", args=[contact.pk])
    tags_change(contacts=[contact], add=make_tag.create_batch(2))
    with django_assert_max_num_queries(40) as few:
        assert client.get(url).status_code == 200
    tags_change(contacts=[contact], add=make_tag.create_batch(12), actor=None)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = client.get(url).content.decode()
    assert body.count("tw-chip-profile") == 14
