"""What a developer sees from /api/v1/: numbers in any writing, tags with their origin,
dimension rights, consent rules, pages, rate limits, tokens."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from crm.models import ApiScope, ApiToken, ConsentStatus, Contact
from tagging.models import AssignmentHistory, TagAssignment, TagVersion
from tagging.services import tags_change
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db


@pytest.fixture
def vip(make_tag, make_dimension):
    return make_tag(dimension=make_dimension(name="Kaufkraft"), name="VIP")


@pytest.fixture
def sport(make_tag, make_dimension):
    return make_tag(dimension=make_dimension(name="Interesse"), name="Sport")


@pytest.mark.parametrize("written", ["+491701234567", "+49 170 1234567", "0049 170-1234567",
                                     "0170 1234567", "(0170) 123 45 67"])
def test_the_phone_path_accepts_any_writing_of_a_number(api, make_contact, written):
    make_contact(phone="+491701234567")
    response = api.get(f"/contacts/{written}/")
    assert response.status_code == 200 and response.json()["phone"] == "+491701234567"


def test_a_contact_shows_its_tags_with_dimension_source_and_time(api, make_contact, vip):
    contact = make_contact()
    tags_change(contacts=[contact], add=[vip], source="import")
    (tag,) = api.get(f"/contacts/{contact.phone}/").json()["tags"]
    assert set(tag) == {"name", "dimension", "source", "added_at"}
    assert (tag["name"], tag["dimension"], tag["source"]) == ("VIP", "Kaufkraft", "import")


def test_a_tag_change_is_reported_and_recorded_as_api_with_the_token_name(
        api_as, make_contact, vip, sport):
    contact = make_contact()
    api = api_as([ApiScope.TAGS_WRITE], name="Shopify", dimensions=[vip.dimension,
                                                                   sport.dimension])
    response = api.post(f"/contacts/{contact.phone}/tags/", {"add": ["vip", "Sport"]})
    body = response.json()
    assert response.status_code == 200
    assert (body["added"], body["removed"], body["changed"]) == (2, 0, True)
    assert sorted(t["name"] for t in body["tags"]) == ["Sport", "VIP"]
    history = AssignmentHistory.objects.get(tag=vip)
    assert (history.reason, history.source_ref) == ("api", "api:Shopify")
    again = api.post(f"/contacts/{contact.phone}/tags/", {"add": ["VIP"]}).json()
    assert (again["added"], again["changed"]) == (0, False)


def test_a_tag_of_a_dimension_the_token_may_not_use_is_403_naming_it(
        api_as, make_contact, vip, sport):
    contact = make_contact()
    api = api_as([ApiScope.TAGS_WRITE], dimensions=[sport.dimension])
    response = api.post(f"/contacts/{contact.phone}/tags/", {"add": ["Sport", "VIP"]})
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("dimension_not_allowed", "add[1]")
    assert "Kaufkraft" in error["message"] and "Interesse" in error["message"]
    assert not TagAssignment.objects.exists()


def test_a_bulk_change_obeys_the_same_dimension_rights(api_as, make_contact, vip, sport):
    make_contact()
    api = api_as([ApiScope.BULK_WRITE], dimensions=[sport.dimension])
    refused = api.post("/bulk-operations/", {"where": "purchases >= 0", "add": ["VIP"]})
    assert refused.status_code == 403 and "Kaufkraft" in refused.json()["error"]["message"]
    done = api.post("/bulk-operations/", {"where": "purchases >= 0", "add": ["Sport"]}).json()
    assert (done["status"], done["total"], done["added"]) == ("done", 1, 1)
    assert "Shop" in done["selection"]
    assert api.get(f"/bulk-operations/{done['id']}/").json()["percent"] == 100


def test_a_new_contact_needs_a_consent_source_to_be_opted_in(api):
    refused = api.post("/contacts/", {"phone": "+491701234567", "consent_status": "opted_in"})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "consent_source"
    created = api.post("/contacts/", {"phone": "+491701234567", "consent_status": "opted_in",
                                      "consent_source": "Messe 2026"})
    assert created.status_code == 201
    contact = Contact.objects.get()
    assert (contact.consent_status, contact.consent_source, contact.country) == (
        "opted_in", "Messe 2026", "DE")


@pytest.mark.parametrize("state", [{"consent_status": ConsentStatus.OPTED_OUT},
                                   {"is_blocked": True}])
def test_an_opt_out_or_a_block_is_never_lifted_and_nothing_changes(api, make_contact, state):
    contact = make_contact(first_name="Ann", **{"consent_status": ConsentStatus.UNKNOWN, **state})
    response = api.patch(f"/contacts/{contact.phone}/", {
        "first_name": "Anna", "consent_status": "opted_in", "consent_source": "shop"})
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "consent_status"
    contact.refresh_from_db()
    assert contact.first_name == "Ann" and contact.consent_status != "opted_in"


def test_patch_changes_only_what_it_names_and_merges_attributes(api, make_contact):
    contact = make_contact(first_name="Ann", city="Bonn", attributes={"shoe": 38, "pet": "cat"})
    body = api.patch(f"/contacts/{contact.phone}/", {
        "city": "Köln", "attributes": {"shoe": 39, "pet": None},
        "consent_status": "opted_out"}).json()
    assert (body["first_name"], body["city"], body["attributes"]) == ("Ann", "Köln",
                                                                       {"shoe": 39})
    assert body["consent_status"] == "opted_out"


def test_a_contact_that_exists_is_409_pointing_at_patch(api, make_contact):
    make_contact(phone="+491701234567")
    response = api.post("/contacts/", {"phone": "0170 1234567"})
    assert response.status_code == 409 and "PATCH" in response.json()["error"]["message"]


def test_pages_walk_every_match_once(api, make_contact, vip):
    contacts = [make_contact() for _ in range(7)]
    tags_change(contacts=contacts[::2], add=[vip])
    seen, cursor = [], None
    while True:
        params = {"where": '"VIP"', "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/contacts/", **params).json()
        seen += [c["phone"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted((c.phone for c in contacts[::2]), key=lambda p: p)


def test_a_bad_expression_says_where(api):
    error = api.get("/contacts/", where='"VIP" AND purchases >').json()["error"]
    assert error["field"] == "where" and "(at " in error["message"]


def test_over_the_rate_limit_the_answer_is_429_with_retry_after(api_as, settings):
    settings.TAGWERK_API_BURST = 3
    api = api_as(rate_limit=1, name="Burst")
    answers = [api.get("/token/") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert int(answers[-1]["Retry-After"]) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limited"


def test_rate_limits_are_per_token(api_as, settings):
    settings.TAGWERK_API_BURST = 1
    first, second = api_as(rate_limit=1, name="A"), api_as(rate_limit=1, name="B")
    assert first.get("/token/").status_code == 200
    assert first.get("/token/").status_code == 429
    assert second.get("/token/").status_code == 200


def test_the_v1_events_answer_names_the_event_and_field(api):
    response = api.post("/events/", {"events": [
        {"type": "interaction", "phone": "+491701234567"},
        {"type": "interaction", "phone": "+491701234567", "occurred_at": "2025-02-30"}]})
    error = response.json()["error"]
    assert response.status_code == 400 and error["field"] == "events[1].occurred_at"
    assert [d["field"] for d in error["details"]] == ["events[1].occurred_at"]


def test_unknown_addresses_answer_in_the_error_format(api):
    response = api.get("/nothing-here/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_tag_administrator_token_defines_tags_logged_with_its_name(api_as, make_dimension):
    make_dimension(name="Interesse")
    api = api_as([ApiScope.TAGS_ADMIN], name="PIM")
    twin = api.post("/tags/", {"name": "Sport", "dimension": "Interesse"})
    assert twin.status_code == 201
    near = api.post("/tags/", {"name": "Sports", "dimension": "Interesse"})
    assert near.status_code == 409 and near.json()["error"]["code"] == "near_twin"
    kept = api.post("/tags/", {"name": "Sports", "dimension": "Interesse",
                               "confirm_near_twin": True, "reason": "the team, not the hobby"})
    assert kept.status_code == 201
    assert TagVersion.objects.filter(reason__contains="(API: PIM)").count() == 1


def test_create_api_token_prints_the_token_on_its_last_line(client, vip):
    out = io.StringIO()
    call_command("create_api_token", "Shop", "--scope", "tags:write", "--scope",
                 "contacts:read", "--dimension", "kaufkraft", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert raw.startswith("tw_") and token.dimensions == [vip.dimension_id]
    answer = Api(client, raw).get("/token/").json()
    assert answer["dimensions"] == ["Kaufkraft"] and answer["scopes"] == ["tags:write",
                                                                          "contacts:read"]


@pytest.mark.parametrize("args, message", [
    (["--scope", "tags:write"], "dimensions"),
    (["--scope", "tags:write", "--dimension", "Nope"], "Unknown dimension"),
    (["--scope", "contacts:delete"], "Unknown scope"),
    ([], "--scope"),
])
def test_create_api_token_refuses_what_it_cannot_make(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", "Shop", *args, stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_the_admin_makes_a_token_for_some_dimensions(client, superuser, vip, sport):
    client.force_login(superuser)
    response = client.post("/admin/crm/apitoken/add/", {
        "name": "CRM sync", "scopes": ["tags:write"], "dimensions": [sport.dimension_id]},
        follow=True)
    raw = next(m.message for m in response.context["messages"]).split(": ")[-1]
    assert ApiToken.objects.get().dimensions == [sport.dimension_id]
    assert Api(client, raw).get("/token/").json()["dimensions"] == ["Interesse"]
    refused = client.post("/admin/crm/apitoken/add/", {"name": "x", "scopes": ["tags:write"]})
    assert refused.status_code == 200 and ApiToken.objects.count() == 1


def test_pages_from_the_index_bitmap_walk_every_id_once():
    from pyroaring import BitMap

    from crm.api.framework import page_of_ids

    ids, seen, cursor = BitMap([3, 5, 9, 12, 40]), [], None
    while True:
        page, cursor = page_of_ids(ids, cursor=cursor, limit=2)
        seen += page
        if cursor is None:
            break
    assert seen == [3, 5, 9, 12, 40]


def test_an_edit_with_a_refused_archive_changes_nothing(api, make_tag):
    tag = make_tag(name="Sport", description="old")
    response = api.patch(f"/tags/{tag.pk}/", {"description": "new", "archived": True})
    assert response.status_code == 422 and "reason" in response.json()["error"]["message"]
    tag.refresh_from_db()
    assert (tag.description, tag.is_archived) == ("old", False)
    done = api.patch(f"/tags/{tag.pk}/", {"description": "new", "archived": True,
                                          "reason": "season over"}).json()
    assert (done["description"], done["archived"]) == ("new", True)
