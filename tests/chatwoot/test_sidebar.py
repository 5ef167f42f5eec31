"""The sidebar Chatwoot frames beside a conversation: who may see it, where it may be
framed, finding the contact by any writing of its number, tags and their changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from crm.models import Contact
from tagging.models import TagAssignment
from tagging.offers.models import Offer
from tagging.services import tags_change
from tests.factories import ContactFactory

ORIGIN = "https://chat.example.com"


@pytest.fixture
def signed_in(client, agent):
    agent.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="crm", codename__in=["view_contact", "add_contact"]))
    client.force_login(agent)
    return client


@pytest.fixture
def customer(vocabulary):
    contact = ContactFactory(phone="+4915123000042", first_name="Mei", last_name="Chen")
    tags_change(contacts=[contact], add=[vocabulary["make-up"], vocabulary["paid"]])
    return contact


def panel(client, phone: str):
    return client.get(reverse("chatwoot:sidebar_panel"), {"phone": phone})


def test_only_the_chatwoot_origin_may_frame_the_sidebar(client, settings, db):
    settings.CHATWOOT_ORIGIN = ORIGIN + "/"
    response = client.get(reverse("chatwoot:sidebar"))
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == f"frame-ancestors 'self' {ORIGIN}"
    assert "X-Frame-Options" not in response
    # Everywhere else framing stays as it was.
    assert client.get(reverse("admin:login"))["X-Frame-Options"] == "SAMEORIGIN"


def test_without_a_chatwoot_origin_only_tagwerk_may_frame_it(client, settings, db):
    settings.CHATWOOT_ORIGIN = "https://evil.example.com; script-src *"
    response = client.get(reverse("chatwoot:sidebar"))
    assert response["Content-Security-Policy"] == "frame-ancestors 'self'"


def test_a_signed_out_agent_is_offered_to_sign_in(client, db):
    page = client.get(reverse("chatwoot:sidebar")).content.decode()
    assert "Sign in to Tagwerk to see this customer" in page
    assert panel(client, "+4915123000042").status_code == 403


def test_the_panel_finds_the_contact_by_any_writing_and_groups_its_tags(signed_in, customer):
    page = panel(signed_in, "0151 2300 0042").content.decode()   # national, with spaces
    assert "Mei Chen" in page and "+4915123000042" in page
    assert 'style="color: #2f9e44">Interest</h3>' in page
    assert 'style="color: #1971c2">Purchase stage</h3>' in page
    assert "Make-up" in page and "Paid" in page
    assert "manual, " in page  # provenance: how and when each tag came
    # Alice holds the Interest grant only: Make-up is removable, Paid is not.
    assert f'data-remove="{customer.tag_assignments.get(tag__name="Make-up").tag_id}"' in page
    assert f'data-remove="{customer.tag_assignments.get(tag__name="Paid").tag_id}"' not in page
    assert "Tag “Paid” added" in page  # the recent timeline


def test_an_agent_adds_a_tag_and_the_history_says_by_whom_in_chatwoot(
        signed_in, customer, vocabulary):
    response = signed_in.post(reverse("chatwoot:sidebar_panel"),
                              {"phone": "+49 151 23000042", "add": vocabulary["sports"].pk})
    page = response.content.decode()
    assert response.status_code == 200 and "Saved." in page
    assert TagAssignment.objects.filter(contact=customer, tag=vocabulary["sports"]).exists()
    assert "manual: by alice in Chatwoot" in page


def test_a_tag_outside_the_agents_grants_is_refused_with_a_sentence(
        signed_in, customer, vocabulary):
    response = signed_in.post(reverse("chatwoot:sidebar_panel"),
                              {"phone": customer.phone, "add": vocabulary["browsing"].pk})
    assert response.status_code == 403
    assert "You may not apply or remove these tags: Browsing" in response.content.decode()
    assert set(customer.tag_assignments.values_list("tag__name", flat=True)) == {"Make-up",
                                                                                 "Paid"}


def test_single_choice_replaces_the_rival_as_everywhere(client, superuser, customer, vocabulary):
    client.force_login(superuser)
    client.post(reverse("chatwoot:sidebar_panel"),
                {"phone": customer.phone, "add": vocabulary["browsing"].pk})
    assert set(customer.tag_assignments.values_list("tag__name", flat=True)) == {
        "Make-up", "Browsing"}


def test_an_unknown_number_is_offered_as_a_new_contact(signed_in, vocabulary):
    page = panel(signed_in, "+49 151 23000077").content.decode()
    assert "Tagwerk has no contact with the number +4915123000077" in page
    assert "Create the contact" in page

    page = signed_in.post(reverse("chatwoot:sidebar_create"),
                          {"phone": "+49 151 23000077", "name": "Ana Lima"}).content.decode()
    contact = Contact.objects.get(phone="+4915123000077")
    assert (contact.first_name, contact.last_name, contact.consent_status) == (
        "Ana", "Lima", Contact._meta.get_field("consent_status").default)
    assert "Contact created." in page and "No tags yet." in page


def test_a_number_that_is_no_number_is_said_so(signed_in, db):
    assert "is not a phone number Tagwerk can read" in panel(signed_in, "hello").content.decode()


def test_a_different_chatwoot_agent_is_pointed_out(signed_in, customer):
    page = signed_in.get(reverse("chatwoot:sidebar_panel"),
                         {"phone": customer.phone, "agent_email": "bob@example.com"})
    assert ("Chatwoot's agent is bob@example.com, but you are signed in to Tagwerk as alice"
            in page.content.decode())
    same = signed_in.get(reverse("chatwoot:sidebar_panel"),
                         {"phone": customer.phone, "agent_email": "ALICE@example.com"})
    assert "tw-other-agent" not in same.content.decode()


def test_the_add_box_says_why_it_is_missing(signed_in, customer, vocabulary, agent):
    tags_change(contacts=[customer], add=[vocabulary["sports"]])
    assert "Every tag you may add is already there." in panel(
        signed_in, customer.phone).content.decode()
    agent.user_permissions.remove(*agent.user_permissions.filter(codename="add_contact"))
    from guardian.shortcuts import remove_perm

    remove_perm("tagging.apply_dimension_tags", agent, vocabulary["interest"])
    assert "ask a tag administrator to grant you a dimension" in panel(
        signed_in, customer.phone).content.decode()


def test_the_panel_asks_the_same_few_queries_whatever_the_number_of_tags(
        signed_in, customer, vocabulary, django_assert_max_num_queries):
    with django_assert_max_num_queries(40) as few:
        panel(signed_in, customer.phone)
    from tests.factories import TagFactory

    many = [TagFactory(dimension=vocabulary["interest"]) for _ in range(30)]
    tags_change(contacts=[customer], add=many)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert panel(signed_in, customer.phone).status_code == 200
    print("sidebar panel queries:", len(few.captured_queries))


def test_the_panel_lists_the_offers_the_customer_may_use_now(signed_in, customer):
    now = timezone.now()
    Offer.objects.create(name="Make-up Vorverkauf", slug="vorverkauf", audience='"Make-up"',
                         code="HERBST20", valid_until=now + timedelta(days=3))
    Offer.objects.create(name="Sport-Rabatt", slug="sport", audience='"Sports"', code="LAUF")
    Offer.objects.create(name="Vorbei", slug="vorbei", audience='"Make-up"', code="ALT",
                         valid_until=now - timedelta(days=1))
    Offer.objects.create(name="Bald", slug="bald", audience='"Make-up"', code="NEU",
                         valid_from=now + timedelta(days=1))

    page = panel(signed_in, customer.phone).content.decode()

    assert "Offers this customer may use now" in page
    assert "Make-up Vorverkauf" in page and "code HERBST20" in page and "ends " in page
    for other in ("Sport-Rabatt", "LAUF", "Vorbei", "Bald"):
        assert other not in page


def test_the_panel_says_when_there_is_no_offer(signed_in, customer):
    page = panel(signed_in, customer.phone).content.decode()
    assert "No offer for this customer right now." in page
