"""Offers: eligibility at the edges of the validity period and for every writing of a number,
the API, the command and the admin's count."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import ApiScope
from tagging.offers.models import Offer
from tagging.offers.selectors import offer_eligibility, offers_for_contact
from tagging.offers.services import OfferError, moment_parse, offer_create
from tagging.services import tags_change
from tests.api.conftest import Api

pytestmark = pytest.mark.django_db
PHONE = "+491701234567"
WRITINGS = ["+491701234567", "+49 170 1234567", "0049 170 1234567", "0170 1234567",
            "+49 (170) 123-4567", "0170/1234567", "+49-170-123 45 67", "00491701234567"]


@pytest.fixture
def vip(make_tag, make_dimension):
    return make_tag(dimension=make_dimension(name="Stufe"), name="VIP")


@pytest.fixture
def member(make_contact, vip):
    contact = make_contact(phone=PHONE)
    tags_change(contacts=[contact], add=[vip])
    return contact


@pytest.fixture
def offer(vip):
    now = timezone.now()
    return offer_create(name="VIP-Vorverkauf", slug="vip-vorverkauf", audience='"VIP"',
                        valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=1),
                        code="HERBST20")


def test_a_member_in_the_period_is_eligible(offer, member):
    answer = offer_eligibility(offer, member)
    assert answer.eligible and answer.reason == (
        "The contact is in the offer's audience and the offer is valid.")


def test_a_contact_outside_the_audience_is_told_so(offer, make_contact):
    answer = offer_eligibility(offer, make_contact())
    assert not answer.eligible
    assert answer.reason == "The contact is not in the offer's audience."


def test_validity_edges_from_inclusive_until_exclusive(offer, member):
    start, end = offer.valid_from, offer.valid_until
    tick = timedelta(microseconds=1)
    assert offer_eligibility(offer, member, start - tick).code == "not_yet_valid"
    assert offer_eligibility(offer, member, start).eligible
    assert offer_eligibility(offer, member, end - tick).eligible
    assert offer_eligibility(offer, member, end).code == "expired"
    assert "expired" in offer_eligibility(offer, member, end).reason
    assert "not valid yet" in offer_eligibility(offer, member, start - tick).reason


def test_open_bounds_are_always_valid(vip, member):
    offer = offer_create(name="Immer", audience='"VIP"')
    assert offer.slug == "immer"
    assert offer_eligibility(offer, member, timezone.now() + timedelta(days=3650)).eligible


def test_a_date_until_includes_its_whole_day(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    until = moment_parse("2026-12-24", end=True)
    assert timezone.localtime(until).isoformat() == "2026-12-25T00:00:00+01:00"
    assert timezone.localtime(moment_parse("2026-12-24")).hour == 0
    with pytest.raises(OfferError, match="is not a date"):
        moment_parse("24.12.2026")


def test_create_refuses_bad_expressions_periods_and_taken_slugs(offer):
    with pytest.raises(OfferError, match="audience expression is invalid"):
        offer_create(name="Kaputt", audience='"VIP" AND')
    now = timezone.now()
    with pytest.raises(OfferError, match="ends before it starts"):
        offer_create(name="Rückwärts", audience='"VIP"', valid_from=now, valid_until=now)
    with pytest.raises(OfferError, match="slug “vip-vorverkauf” is used"):
        offer_create(name="Anders", slug="vip-vorverkauf", audience='"VIP"')


def test_contact_offers_lists_only_valid_offers_it_may_use(offer, member, vip):
    now = timezone.now()
    offer_create(name="Vorbei", audience='"VIP"', valid_until=now - timedelta(hours=1),
                 valid_from=now - timedelta(days=2))
    offer_create(name="Für alle anderen", audience='NOT "VIP"')
    assert [o.slug for o in offers_for_contact(member)] == ["vip-vorverkauf"]


# --- the API --------------------------------------------------------------------------------

@pytest.fixture
def shop(client, make_token):
    return Api(client, make_token([ApiScope.OFFERS_READ]))


@pytest.mark.parametrize("writing", WRITINGS)
def test_eligibility_answers_for_every_writing_of_the_number(shop, offer, member, writing):
    response = shop.get("/offers/vip-vorverkauf/eligibility/", phone=writing)
    assert response.status_code == 200, response.content
    assert response.json()["eligible"] is True


def test_eligibility_of_an_unknown_number_is_an_answer(shop, offer):
    response = shop.get("/offers/vip-vorverkauf/eligibility/", phone="+49 170 9999999")
    assert response.status_code == 200
    assert response.json() == {
        "eligible": False, "code": "unknown_contact",
        "reason": "No contact has this number, so nobody with it may use the offer."}


def test_eligibility_refuses_a_non_number_and_an_unknown_offer(shop, offer):
    assert shop.get("/offers/vip-vorverkauf/eligibility/", phone="hallo").status_code == 422
    response = shop.get("/offers/gibt-es-nicht/eligibility/", phone=PHONE)
    assert response.status_code == 404
    assert "gibt-es-nicht" in response.json()["error"]["message"]


def test_expired_offer_says_so_over_the_api(shop, offer, member):
    Offer.objects.filter(pk=offer.pk).update(valid_from=timezone.now() - timedelta(days=3),
                                             valid_until=timezone.now() - timedelta(days=2))
    body = shop.get("/offers/vip-vorverkauf/eligibility/", phone=PHONE).json()
    assert body["eligible"] is False and body["code"] == "expired"


def test_contact_offers_endpoint(shop, offer, member):
    response = shop.get("/contacts/0170 1234567/offers/")
    assert response.status_code == 200
    [item] = response.json()["items"]
    assert item["slug"] == "vip-vorverkauf" and item["code"] == "HERBST20"
    assert shop.get("/contacts/+49 170 9999999/offers/").status_code == 404


def test_a_token_without_offers_read_is_refused(client, make_token, offer, member):
    other = Api(client, make_token([ApiScope.CONTACTS_READ]))
    response = other.get("/offers/vip-vorverkauf/eligibility/", phone=PHONE)
    assert response.status_code == 403
    assert "offers:read" in response.json()["error"]["message"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(max_size=40))
def test_hostile_phone_values_never_crash(shop, offer, raw):
    response = shop.get("/offers/vip-vorverkauf/eligibility/", phone=raw)
    assert response.status_code in (200, 422)
    assert "error" in response.json() or "eligible" in response.json()


# --- the command and the admin --------------------------------------------------------------

def test_create_offer_command(vip, member):
    out = StringIO()
    call_command("create_offer", "--slug", "vip-x", "--name", "VIP X", "--where", '"VIP"',
                 "--from", "2026-01-01", "--until", "2026-12-31", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["slug"] == "vip-x" and result["eligible"] == 1
    offer = Offer.objects.get(slug="vip-x")
    assert timezone.localtime(offer.valid_until).date().isoformat() == "2027-01-01"
    with pytest.raises(CommandError, match="invalid"):
        call_command("create_offer", "--slug", "y", "--name", "Y", "--where", "((")


def test_admin_shows_the_eligible_count(client, superuser, offer, member):
    client.force_login(superuser)
    page = client.get("/admin/offers/offer/").content.decode()
    assert "VIP-Vorverkauf" in page and ">1<" in page
    change = client.get(f"/admin/offers/offer/{offer.pk}/change/").content.decode()
    assert "eligible contacts now" in change.lower() or "Eligible contacts now" in change


# --- offers in templates -----------------------------------------------------------------------

def test_a_template_names_an_offers_code_and_link(offer, member):
    from campaigns.content import render_preview, template_checks
    from campaigns.services import template_create

    Offer.objects.filter(pk=offer.pk).update(link="https://shop.example/vip")
    template = template_create(name="vip", language="de", body="Code {{1}}, hier: {{2}}",
                               variables=["offer:vip-vorverkauf", "offer:vip-vorverkauf.link"])
    assert render_preview(template, member) == "Code HERBST20, hier: https://shop.example/vip"
    assert not [c for c in template_checks(template) if c.code == "unknown_variable"]
    broken = template_create(name="kaputt", language="de", body="Code {{1}}",
                             variables=["offer:gibt-es-nicht"])
    [check] = [c for c in template_checks(broken) if c.code == "unknown_variable"]
    assert "offer:<slug of an offer>" in check.message


def _changelist_queries(client) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/admin/offers/offer/").content.decode()
    return page, len(captured.captured_queries)


def test_the_offer_list_counts_its_rows_in_queries_that_do_not_grow_with_them(
        client, superuser, offer, member, make_contact):
    client.force_login(superuser)
    make_contact()
    Offer.objects.create(name="Alle", slug="alle", audience='NOT "VIP"')
    _changelist_queries(client)  # the admin theme, cached after the first page
    _page, few = _changelist_queries(client)
    for i in range(5):
        Offer.objects.create(name=f"Angebot {i}", slug=f"angebot-{i}",
                             audience=f'"VIP" OR purchases >= {i}')
    Offer.objects.create(name="Kaputt", slug="kaputt", audience='"Gelöschter Tag"')
    page, many = _changelist_queries(client)
    assert many == few
    rows = {name: count for name, count in re.findall(
        r'<th class="field-name"><a [^>]*>([^<]+)</a></th>.*?<td class="field-eligible">'
        r'([^<]+)</td>', page)}
    assert rows["VIP-Vorverkauf"] == "1" and rows["Alle"] == "1"
    assert rows["Angebot 0"] == "2" and rows["Angebot 3"] == "1"
    assert rows["Kaputt"] == "invalid audience"
