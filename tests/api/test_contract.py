"""Contract tests for every operation of the OpenAPI schema at /api/v1/openapi.json.

The schema is read from the running API and validated as OpenAPI 3.1. Every operation
it lists must have a scenario here (a new endpoint without one fails
``test_every_operation_has_a_contract``); each scenario is run for success, for a
missing token (401) and for a token lacking the operation's scope (403), and every
answer's status must be documented for that operation and its body must match the
documented schema, errors included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from crm.models import ApiScope
from tagging.audiences.models import Segment
from tests.api.conftest import ALL_SCOPES, Api

pytestmark = pytest.mark.django_db
BASE = "urn:tagwerk:openapi"


@cache
def _schema() -> dict:
    from config.api import api

    # As served: through JSON, so that status codes are text as in the document.
    return json.loads(json.dumps(api.get_openapi_schema(path_prefix="/api/v1")))


def _operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in _schema()["paths"].items()
            for method in item if method in ("get", "post", "patch", "put", "delete")}


def _rebase(node):
    if isinstance(node, dict):
        return {k: (f"{BASE}{v}" if k == "$ref" and v.startswith("#") else _rebase(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def check_answer(method: str, template: str, response) -> None:
    """The status is documented for the operation and the body matches its schema."""
    documented = _schema()["paths"][template][method.lower()]["responses"]
    assert str(response.status_code) in documented, (
        f"{method} {template} answered {response.status_code}, documented: {sorted(documented)}"
        f"\n{response.content[:500]!r}")
    content = documented[str(response.status_code)].get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is not None:
        registry = Registry().with_resource(BASE, Resource(_schema(), DRAFT202012))
        Draft202012Validator(_rebase(schema), registry=registry).validate(response.json())


@dataclass
class World:
    phone: str
    national: str
    tag: object
    other_tag: object
    dimension: object
    segment: Segment


@pytest.fixture
def world(make_contact, make_tag, make_dimension):
    dimension = make_dimension(name="Interesse")
    tag = make_tag(dimension=dimension, name="Sport")
    other = make_tag(dimension=dimension, name="Reisen")
    contact = make_contact(phone="+491701234567")
    from tagging.services import tags_change

    tags_change(contacts=[contact], add=[tag])
    make_contact(phone="+491701234568")
    segment = Segment.objects.create(name="Sportler", expression='"Sport"')
    return World(contact.phone, "0170 1234567", tag, other, dimension, segment)


@dataclass
class Scenario:
    scope: str | None  # None: any valid token
    request: Callable[[Api, World], object]
    status: int


def _bulk(api: Api, w: World):
    return api.post("/bulk-operations/", {"where": '"Sport"', "add": ["Reisen"]})


def _bulk_get(api: Api, w: World):
    from tagging.audiences.services import bulk_operation_start

    bulk = bulk_operation_start(contacts=[], add=[w.other_tag])
    return api.get(f"/bulk-operations/{bulk.pk}/")


def _offer(api: Api, w: World, path: str, **params):
    from tagging.offers.models import Offer

    Offer.objects.get_or_create(slug="sport-tag", defaults={"name": "Sporttag",
                                                            "audience": '"Sport"'})
    return api.get(path.format(phone=w.phone), **params)


S = ApiScope
SCENARIOS: dict[tuple[str, str], Scenario] = {
    ("GET", "/api/v1/token/"): Scenario(None, lambda a, w: a.get("/token/"), 200),
    ("GET", "/api/v1/contacts/"): Scenario(
        S.CONTACTS_READ, lambda a, w: a.get("/contacts/", where='"Sport"', limit=1), 200),
    ("POST", "/api/v1/contacts/"): Scenario(
        S.CONTACTS_WRITE, lambda a, w: a.post("/contacts/", {
            "phone": "+49 170 7654321", "first_name": "Mia", "consent_status": "opted_in",
            "consent_source": "shop checkout"}), 201),
    ("GET", "/api/v1/contacts/{phone}/"): Scenario(
        S.CONTACTS_READ, lambda a, w: a.get(f"/contacts/{w.national}/"), 200),
    ("PATCH", "/api/v1/contacts/{phone}/"): Scenario(
        S.CONTACTS_WRITE, lambda a, w: a.patch(f"/contacts/{w.phone}/", {"city": "Köln"}), 200),
    ("POST", "/api/v1/contacts/{phone}/tags/"): Scenario(
        S.TAGS_WRITE, lambda a, w: a.post(f"/contacts/{w.phone}/tags/",
                                          {"add": ["Reisen"], "remove": ["Sport"]}), 200),
    ("GET", "/api/v1/dimensions/"): Scenario(None, lambda a, w: a.get("/dimensions/"), 200),
    ("POST", "/api/v1/dimensions/"): Scenario(
        S.TAGS_ADMIN, lambda a, w: a.post("/dimensions/", {"name": "Kaufkraft"}), 201),
    ("GET", "/api/v1/dimensions/{id}/"): Scenario(
        None, lambda a, w: a.get(f"/dimensions/{w.dimension.pk}/"), 200),
    ("PATCH", "/api/v1/dimensions/{id}/"): Scenario(
        S.TAGS_ADMIN, lambda a, w: a.patch(f"/dimensions/{w.dimension.pk}/",
                                           {"description": "Was sie mögen"}), 200),
    ("GET", "/api/v1/tags/"): Scenario(None, lambda a, w: a.get("/tags/", dimension="Interesse"),
                                       200),
    ("POST", "/api/v1/tags/"): Scenario(
        S.TAGS_ADMIN, lambda a, w: a.post("/tags/", {"name": "Kochen", "dimension": "Interesse"}),
        201),
    ("GET", "/api/v1/tags/{id}/"): Scenario(None, lambda a, w: a.get(f"/tags/{w.tag.pk}/"), 200),
    ("PATCH", "/api/v1/tags/{id}/"): Scenario(
        S.TAGS_ADMIN, lambda a, w: a.patch(f"/tags/{w.tag.pk}/", {"symbol": "⚽"}), 200),
    ("GET", "/api/v1/segments/"): Scenario(S.SEGMENTS_READ, lambda a, w: a.get("/segments/"), 200),
    ("GET", "/api/v1/segments/{id}/"): Scenario(
        S.SEGMENTS_READ, lambda a, w: a.get(f"/segments/{w.segment.pk}/"), 200),
    ("GET", "/api/v1/segments/{id}/count/"): Scenario(
        S.SEGMENTS_READ, lambda a, w: a.get(f"/segments/{w.segment.pk}/count/"), 200),
    ("GET", "/api/v1/segments/{id}/members/"): Scenario(
        S.SEGMENTS_READ, lambda a, w: a.get(f"/segments/{w.segment.pk}/members/"), 200),
    ("POST", "/api/v1/bulk-operations/"): Scenario(S.BULK_WRITE, _bulk, 202),
    ("GET", "/api/v1/bulk-operations/{id}/"): Scenario(S.BULK_WRITE, _bulk_get, 200),
    ("POST", "/api/v1/events/"): Scenario(
        S.EVENTS_WRITE, lambda a, w: a.post("/events/", [
            {"type": "purchase", "phone": w.national, "amount": "19.90", "source_id": "o-1"}]),
        201),
    ("GET", "/api/v1/offers/{slug}/eligibility/"): Scenario(
        S.OFFERS_READ, lambda a, w: _offer(a, w, "/offers/sport-tag/eligibility/",
                                           phone=w.national), 200),
    ("GET", "/api/v1/contacts/{phone}/offers/"): Scenario(
        S.OFFERS_READ, lambda a, w: _offer(a, w, "/contacts/{phone}/offers/"), 200),
}


def test_the_schema_is_valid_openapi(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate_spec(schema)
    assert schema["openapi"].startswith("3.1") and schema["info"]["version"] == "1"


def test_the_docs_page_is_served(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and b"swagger" in response.content.lower()


def test_every_operation_has_a_contract():
    assert _operations() == set(SCENARIOS)


@pytest.mark.parametrize("operation", sorted(SCENARIOS), ids=" ".join)
def test_success_matches_the_schema(api, world, operation):
    scenario = SCENARIOS[operation]
    response = scenario.request(api, world)
    assert response.status_code == scenario.status, response.content[:500]
    check_answer(*operation, response)


@pytest.mark.parametrize("operation", sorted(SCENARIOS), ids=" ".join)
def test_without_a_token_the_answer_is_401(client, world, operation):
    response = SCENARIOS[operation].request(Api(client, None), world)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    check_answer(*operation, response)


@pytest.mark.parametrize("operation", sorted(op for op, s in SCENARIOS.items() if s.scope),
                         ids=" ".join)
def test_a_token_without_the_scope_is_refused_naming_it(api_as, world, operation):
    scenario = SCENARIOS[operation]
    response = scenario.request(api_as([s for s in ALL_SCOPES if s != scenario.scope]), world)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert scenario.scope in response.json()["error"]["message"]
    check_answer(*operation, response)


ERRORS = [
    ("GET", "/api/v1/contacts/{phone}/", lambda a, w: a.get("/contacts/+491709999999/"), 404),
    ("GET", "/api/v1/contacts/{phone}/", lambda a, w: a.get("/contacts/12/"), 422),
    ("GET", "/api/v1/contacts/", lambda a, w: a.get("/contacts/", where='"Nope'), 422),
    ("GET", "/api/v1/contacts/", lambda a, w: a.get("/contacts/", cursor="garbage"), 400),
    ("GET", "/api/v1/contacts/", lambda a, w: a.get("/contacts/", limit=0), 422),
    ("POST", "/api/v1/contacts/", lambda a, w: a.post("/contacts/", {"phone": w.national}), 409),
    ("POST", "/api/v1/contacts/", lambda a, w: a.post("/contacts/", {"phone": "+4917012",
                                                                     "nickname": "x"}), 422),
    ("PATCH", "/api/v1/contacts/{phone}/",
     lambda a, w: a.patch(f"/contacts/{w.phone}/", {"birth_date": "2025-02-30"}), 422),
    ("POST", "/api/v1/contacts/{phone}/tags/",
     lambda a, w: a.post(f"/contacts/{w.phone}/tags/", {"add": ["Unbekannt"]}), 422),
    ("POST", "/api/v1/contacts/{phone}/tags/",
     lambda a, w: a.post(f"/contacts/{w.phone}/tags/", raw=b"{nope"), 400),
    ("GET", "/api/v1/dimensions/{id}/", lambda a, w: a.get("/dimensions/999999/"), 404),
    ("POST", "/api/v1/dimensions/", lambda a, w: a.post("/dimensions/", {"name": "interesse"}),
     422),
    ("POST", "/api/v1/tags/", lambda a, w: a.post("/tags/", {"name": "Sports",
                                                             "dimension": "Interesse"}), 409),
    ("PATCH", "/api/v1/tags/{id}/", lambda a, w: a.patch(f"/tags/{w.tag.pk}/", {"name": "Fußball"}),
     422),
    ("GET", "/api/v1/tags/{id}/", lambda a, w: a.get("/tags/999999/"), 404),
    ("GET", "/api/v1/segments/{id}/", lambda a, w: a.get("/segments/999999/"), 404),
    ("POST", "/api/v1/bulk-operations/",
     lambda a, w: a.post("/bulk-operations/", {"where": '"Sport"', "segment": 1, "add": ["Sport"]}),
     422),
    ("GET", "/api/v1/bulk-operations/{id}/", lambda a, w: a.get("/bulk-operations/999999/"), 404),
    ("POST", "/api/v1/events/", lambda a, w: a.post("/events/", [{"type": "purchase"}]), 400),
    ("POST", "/api/v1/events/", lambda a, w: a.post("/events/", raw="[" * 100_000), 400),
]


@pytest.mark.parametrize("case", range(len(ERRORS)), ids=lambda i: f"{ERRORS[i][1]}-{ERRORS[i][3]}")
def test_documented_errors_keep_the_one_format(api, world, case):
    method, template, request, status = ERRORS[case]
    response = request(api, world)
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert error["code"] and error["message"]
    check_answer(method, template, response)
