import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from tagging.models import AssignmentHistory, Dimension, Tag, TagAssignment, TagVersion
from tagging.services import tags_change
from tagging.vocabulary import tag_archive, tag_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def add_tag(client, dimension, name, **extra):
    data = {"dimension": dimension.pk, "name": name, "colour": "", "symbol": "",
            "description": "", "kind": "static", "lifetime_days": "", "reason": ""}
    return client.post(reverse("admin:tagging_tag_add"), {**data, **extra})


def test_tag_form_names_the_existing_tag(admin_client, make_tag, make_dimension):
    make_tag(name="Bestellt")
    response = add_tag(admin_client, make_dimension(), " bestellt")
    assert response.status_code == 200
    assert "The tag “Bestellt” already exists" in response.context["adminform"].form.errors[
        "name"][0]
    assert Tag.objects.count() == 1


def test_tag_form_near_twin_override_with_reason(admin_client, make_tag, make_dimension):
    make_tag(name="Bestellt")
    dimension = make_dimension()
    warned = add_tag(admin_client, dimension, "Bestelt")
    assert "looks like “Bestellt”" in warned.content.decode()
    assert 'name="confirm_near_twin"' in warned.content.decode()
    no_reason = add_tag(admin_client, dimension, "Bestelt", confirm_near_twin="on")
    assert no_reason.status_code == 200

    saved = add_tag(admin_client, dimension, "Bestelt", confirm_near_twin="on",
                    reason="supplier wording")

    assert saved.status_code == 302
    tag = Tag.objects.get(name="Bestelt")
    assert TagVersion.objects.get(object_id=tag.pk, object_type="tag").reason == \
        "supplier wording"


def test_rename_without_reason_is_a_form_error(admin_client, make_tag):
    tag = make_tag(name="Sport")
    response = admin_client.post(reverse("admin:tagging_tag_change", args=[tag.pk]), {
        "dimension": tag.dimension_id, "name": "Interesse-Sport", "colour": "", "symbol": "",
        "description": "", "kind": "static", "lifetime_days": "", "reason": ""})
    assert response.status_code == 200
    assert "Give a reason" in response.context["adminform"].form.errors["reason"][0]
    tag.refresh_from_db()
    assert tag.name == "Sport"


def test_delete_page_lists_counts_not_rows_and_suggests_archive(
        admin_client, make_tag, make_contact, django_assert_max_num_queries):
    tag = make_tag(name="Beliebt")
    url = reverse("admin:tagging_tag_delete", args=[tag.pk])
    tags_change(contacts=make_contact.create_batch(3), add=[tag])
    # 13: one asks which journey steps name the tag (their M2M rows).
    with django_assert_max_num_queries(13) as few:
        admin_client.get(url)
    tags_change(contacts=make_contact.create_batch(60), add=[tag])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)
    body = response.content.decode()
    assert "<strong>63</strong> contacts holding it" in body
    assert "Archive instead" in body
    assert body.count("+49151") == 0  # no contact is listed

    archived = admin_client.post(url, {"reason": "keep history", "_archive": "1"})
    assert archived.status_code == 302
    tag.refresh_from_db()
    assert tag.is_archived and TagAssignment.objects.filter(tag=tag).count() == 63

    missing_reason = admin_client.post(url, {"reason": "", "_delete": "1"})
    assert missing_reason.status_code == 200 and Tag.objects.filter(pk=tag.pk).exists()
    deleted = admin_client.post(url, {"reason": "obsolete", "_delete": "1"})
    assert deleted.status_code == 302
    assert not Tag.objects.filter(pk=tag.pk).exists()
    assert AssignmentHistory.objects.filter(tag_id=tag.pk, action="removed").count() == 63


def test_unreferenced_tag_deletes_plainly(admin_client, make_tag):
    tag = make_tag()
    page = admin_client.get(reverse("admin:tagging_tag_delete", args=[tag.pk])).content.decode()
    assert "Nothing refers to" in page


def test_bulk_delete_action_is_replaced_by_archive(admin_client):
    response = admin_client.get(reverse("admin:tagging_tag_changelist"))
    actions = [name for name, _label in response.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert {"archive_selected", "restore_selected", "merge_selected"} <= set(actions)


def test_archive_action_asks_for_a_reason(admin_client, make_tag):
    tags = make_tag.create_batch(2)
    url = reverse("admin:tagging_tag_changelist")
    selection = {"action": "archive_selected", ACTION_CHECKBOX_NAME: [t.pk for t in tags]}
    asked = admin_client.post(url, selection)
    assert asked.status_code == 200 and "Reason" in asked.content.decode()
    assert not Tag.objects.filter(is_archived=True).exists()
    done = admin_client.post(url, {**selection, "confirm": "1", "reason": "season over"},
                             follow=True)
    assert "2 tags archived." in done.content.decode()
    assert Tag.objects.filter(is_archived=True).count() == 2
    assert TagVersion.objects.filter(action="archived", reason="season over").count() == 2


def test_merge_action(admin_client, make_tag, make_contact):
    ordered, bestellt = make_tag(name="Ordered"), make_tag(name="Bestellt")
    tags_change(contacts=make_contact.create_batch(4), add=[ordered])
    url = reverse("admin:tagging_tag_changelist")
    done = admin_client.post(url, {"action": "merge_selected", ACTION_CHECKBOX_NAME: [ordered.pk],
                                   "confirm": "1", "reason": "one name",
                                   "target": bestellt.pk}, follow=True)
    assert "1 tag merged into “Bestellt”; 4 contacts received it." in done.content.decode()
    assert TagAssignment.objects.filter(tag=bestellt).count() == 4


def test_agent_cannot_run_vocabulary_actions(client, make_tag):
    from tests.tagging.governance import user_in_role

    client.force_login(user_in_role("marketer"))
    tag = make_tag()
    response = client.post(reverse("admin:tagging_tag_changelist"), {
        "action": "archive_selected", ACTION_CHECKBOX_NAME: [tag.pk], "confirm": "1",
        "reason": "x"})
    tag.refresh_from_db()
    assert not tag.is_archived
    assert response.status_code in (200, 302)


def test_tag_page_shows_added_and_removed_per_week(admin_client, make_tag, make_contact):
    tag = make_tag()
    contacts = make_contact.create_batch(5)
    tags_change(contacts=contacts, add=[tag])
    tags_change(contacts=contacts[:2], remove=[tag])
    response = admin_client.get(reverse("admin:tagging_tag_change", args=[tag.pk]))
    [week] = response.context["weekly_changes"]
    assert (week["added"], week["removed"]) == (5, 2)
    assert 'class="tw-added">5<' in response.content.decode()


def test_version_log_is_filterable_and_exports_csv(admin_client, make_dimension, superuser):
    dimension = make_dimension()
    tag = tag_create(dimension=dimension, name="Neu", actor=superuser)
    tag_archive(tag=tag, actor=superuser, reason="Test")
    url = reverse("admin:tagging_tagversion_changelist")
    filtered = admin_client.get(url, {"action__exact": "archived"})
    assert [v.action for v in filtered.context["cl"].result_list] == ["archived"]
    by_object = admin_client.get(url, {"object_type": "tag", "object_id": tag.pk})
    assert by_object.status_code == 200 and len(by_object.context["cl"].result_list) == 2
    export = admin_client.post(reverse("admin:tagging_tagversion_export"), {
        "format": "0", "tagversionresource_at": "on", "tagversionresource_action": "on",
        "tagversionresource_object_name": "on", "tagversionresource_reason": "on",
        "tagversionresource_actor": "on"})
    assert export.status_code == 200
    text = export.content.decode()
    assert "archived" in text and "Neu" in text and superuser.username in text


def test_dimension_admin_logs_rename_with_reason(admin_client):
    dimension = Dimension.objects.create(name="Quelle", colour="#1C7ED6")
    url = reverse("admin:tagging_dimension_change", args=[dimension.pk])
    data = {"name": "Herkunft", "colour": "#1C7ED6", "description": "", "order": 0}
    refused = admin_client.post(url, data)
    assert refused.status_code == 200
    saved = admin_client.post(url, {**data, "reason": "clearer"})
    assert saved.status_code == 302
    entry = TagVersion.objects.get(object_type="dimension")
    assert (entry.action, entry.changes["name"]) == ("renamed", ["Quelle", "Herkunft"])


def test_dimension_order_edited_in_the_list_is_logged(admin_client):
    dimension = Dimension.objects.create(name="Quelle")
    response = admin_client.post(reverse("admin:tagging_dimension_changelist"), {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": dimension.pk,
        "form-0-order": "7", "_save": "Save"})
    assert response.status_code == 302
    dimension.refresh_from_db()
    assert dimension.order == 7
    assert TagVersion.objects.get(object_type="dimension").changes == {"order": [0, 7]}


def test_dimension_delete_page_counts_offers_archive_and_deletes_with_its_tags(
        admin_client, make_dimension, make_tag, make_contact, django_assert_max_num_queries):
    dimension = make_dimension(name="Kanal")
    tiktok, flyer = make_tag(dimension=dimension, name="TikTok"), make_tag(dimension=dimension,
                                                                          name="Flyer")
    url = reverse("admin:tagging_dimension_delete", args=[dimension.pk])
    tags_change(contacts=make_contact.create_batch(2), add=[tiktok])
    # 18: some ask which Chatwoot connections sync the dimension and which journey steps
    # name its tags (their M2M rows).
    with django_assert_max_num_queries(18) as few:
        admin_client.get(url)
    tags_change(contacts=make_contact.create_batch(40), add=[tiktok, flyer])
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client.get(url)
    body = response.content.decode()
    assert "<strong>2</strong> tags" in body
    assert "<strong>82</strong> tag holdings" in body
    assert "Archive instead" in body and "Delete anyway" in body
    assert body.count("+49151") == 0  # counts, never the contacts

    archived = admin_client.post(url, {"reason": "channel closed", "_archive": "1"},
                                 follow=True)
    assert "“Kanal” was archived with 2 tags." in archived.content.decode()
    dimension.refresh_from_db()
    assert dimension.is_archived and Tag.objects.filter(is_archived=True).count() == 2
    assert "Archive instead" not in admin_client.get(url).content.decode()

    no_reason = admin_client.post(url, {"reason": "", "_delete": "1"})
    assert no_reason.status_code == 200 and Dimension.objects.filter(pk=dimension.pk).exists()
    deleted = admin_client.post(url, {"reason": "gone for good", "_delete": "1"}, follow=True)
    assert ("The dimension “Kanal” was deleted with 2 tags; 82 tag holdings were removed."
            in deleted.content.decode())
    assert not Dimension.objects.filter(pk=dimension.pk).exists()
    assert AssignmentHistory.objects.filter(action="removed").count() == 82


def test_dimension_delete_blocked_by_a_rule_says_so(admin_client, make_dimension):
    from tagging.rules.models import Rule

    dimension = make_dimension(name="Gekauft")
    Rule.objects.create(name="Kauf merken", add_template="Gekauft {product}",
                        template_dimension=dimension)
    url = reverse("admin:tagging_dimension_delete", args=[dimension.pk])
    assert "<strong>1</strong> rules" in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"reason": "tidy", "_delete": "1"})
    assert response.status_code == 200
    assert "still used by rules and cannot be deleted; archive it instead" in \
        response.content.decode()
    assert Dimension.objects.filter(pk=dimension.pk).exists()


def test_dimension_archive_and_restore_buttons_ask_for_a_reason(
        admin_client, make_dimension, make_tag, make_contact):
    dimension = make_dimension(name="Aktion")
    own, earlier = make_tag(dimension=dimension, name="Sale-618"), make_tag(
        dimension=dimension, name="Sale-1111")
    tag_archive(tag=earlier, actor=None, reason="over")
    change = reverse("admin:tagging_dimension_change", args=[dimension.pk])
    archive_url = reverse("admin:tagging_dimension_archive", args=[dimension.pk])
    restore_url = reverse("admin:tagging_dimension_restore", args=[dimension.pk])
    assert archive_url in admin_client.get(change).content.decode()

    page = admin_client.get(archive_url).content.decode()
    assert "its 1 tag not archived yet will be archived" in page
    assert "1 tag archived on its own before stays archived" in page
    refused = admin_client.post(archive_url, {"reason": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    dimension.refresh_from_db()
    assert not dimension.is_archived

    done = admin_client.post(archive_url, {"reason": "campaign over"}, follow=True)
    body = done.content.decode()
    assert "“Aktion” was archived with 1 tag." in body
    assert restore_url in body and "This dimension is archived" in body
    own.refresh_from_db()
    assert own.is_archived

    assert "comes back with the 1 tag archived together with it" in \
        admin_client.get(restore_url).content.decode()
    back = admin_client.post(restore_url, {"reason": ""}, follow=True)
    assert "“Aktion” was restored with 1 tag." in back.content.decode()
    own.refresh_from_db()
    earlier.refresh_from_db()
    assert not own.is_archived and earlier.is_archived


def test_dimension_archive_action_and_list_marks_archived(admin_client, make_dimension,
                                                         make_tag):
    dimensions = [make_dimension(name="Alt-A"), make_dimension(name="Alt-B")]
    for d in dimensions:
        make_tag(dimension=d)
    url = reverse("admin:tagging_dimension_changelist")
    selection = {"action": "archive_selected", ACTION_CHECKBOX_NAME: [d.pk for d in dimensions]}
    asked = admin_client.post(url, selection)
    assert asked.status_code == 200 and "Reason" in asked.content.decode()
    assert not Dimension.objects.filter(is_archived=True).exists()
    done = admin_client.post(url, {**selection, "confirm": "1", "reason": "merged away"},
                             follow=True)
    assert "2 dimensions archived with 2 tags." in done.content.decode()
    assert Dimension.objects.filter(is_archived=True).count() == 2
    listed = admin_client.get(url + "?is_archived__exact=1")
    assert {d.name for d in listed.context["cl"].result_list} == {"Alt-A", "Alt-B"}

    restored = admin_client.post(url, {"action": "restore_selected", "confirm": "1",
                                       ACTION_CHECKBOX_NAME: [dimensions[0].pk], "reason": ""},
                                 follow=True)
    assert "1 dimension restored with 1 tags." in restored.content.decode()
    assert not Tag.objects.get(dimension=dimensions[0]).is_archived


def test_archived_dimension_is_not_offered_for_new_tags_or_on_the_profile(
        admin_client, make_dimension, make_tag, make_contact):
    open_dim, closed = make_dimension(name="Offen"), make_dimension(name="Geschlossen")
    make_tag(dimension=closed, name="Zu-Sport")
    make_tag(dimension=open_dim, name="Offen-Sport")
    admin_client.post(reverse("admin:tagging_dimension_archive", args=[closed.pk]),
                      {"reason": "closed"})

    form = admin_client.get(reverse("admin:tagging_tag_add")).context["adminform"].form
    assert list(form.fields["dimension"].queryset) == [open_dim]
    refused = add_tag(admin_client, closed, "Zu-Neu")
    assert refused.status_code == 200 and not Tag.objects.filter(name="Zu-Neu").exists()
    contact = make_contact()
    found = admin_client.get(reverse("admin:crm_contact_tag_search", args=[contact.pk]),
                             {"q": "sport"}).json()["results"]
    assert [r["name"] for r in found] == ["Offen-Sport"]
