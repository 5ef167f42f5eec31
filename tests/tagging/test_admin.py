import pytest
from django.urls import reverse

from tagging.services import tags_change

pytestmark = pytest.mark.django_db


def _contacts_with_tags(make_contact, make_tag, n):
    tags = make_tag.create_batch(3)
    contacts = make_contact.create_batch(n)
    tags_change(contacts=contacts, add=tags)
    return contacts, tags


def test_contact_list_shows_tag_chips_without_a_query_per_row(
    client, superuser, make_contact, make_tag, django_assert_max_num_queries
):
    client.force_login(superuser)
    url = reverse("admin:crm_contact_changelist")
    _contacts_with_tags(make_contact, make_tag, 5)
    with django_assert_max_num_queries(12) as small:
        response = client.get(url)
    assert response.status_code == 200
    _contacts, tags = _contacts_with_tags(make_contact, make_tag, 40)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = client.get(url)
    assert response.content.decode().count('class="tw-chip"') == 45 * 3
    assert tags[0].name in response.content.decode()


def test_contact_search_by_phone_in_national_writing(client, superuser, make_contact):
    client.force_login(superuser)
    make_contact(phone="+491701234567", first_name="Gesucht")
    make_contact(first_name="Andere")
    response = client.get(reverse("admin:crm_contact_changelist"), {"q": "0170 123 45 67"})
    body = response.content.decode()
    assert "Gesucht" in body and "Andere" not in body


def test_tag_and_dimension_lists_show_live_counts(client, superuser, make_contact, make_tag):
    client.force_login(superuser)
    tag = make_tag(name="Zählbar")
    tags_change(contacts=make_contact.create_batch(7), add=[tag])
    response = client.get(reverse("admin:tagging_tag_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_list.get(pk=tag.pk).holders == 7
    response = client.get(reverse("admin:tagging_dimension_changelist"))
    assert response.context["cl"].result_list.get(pk=tag.dimension_id).holders == 7


def test_contact_profile_page_shows_tags(client, superuser, make_contact, make_tag):
    client.force_login(superuser)
    contact = make_contact()
    tags_change(contacts=[contact], add=[make_tag(name="Sichtbar", symbol="★")])
    response = client.get(reverse("admin:crm_contact_change", args=[contact.pk]))
    assert response.status_code == 200
    assert "★ Sichtbar" in response.content.decode()


def test_admin_theme_is_installed(client, superuser):
    from admin_interface.models import Theme

    assert Theme.objects.get(active=True).name == "Tagwerk"
    client.force_login(superuser)
    assert client.get(reverse("admin:index")).status_code == 200
