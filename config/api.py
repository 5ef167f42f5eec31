"""``/api/v1/``: one versioned JSON API composed of the routers each app owns.

Built on django-ninja (docs/api.md says why): request and answer schemas are
pydantic models, from which it writes the OpenAPI schema
(``/api/v1/openapi.json``) and the docs page (``/api/v1/docs``). The framework
every router uses (tokens with scopes and rate limits, the one error format,
cursor pages) is ``crm.api.framework``; this module only puts the routers
together, as ``config`` does for the whole project.
"""

from __future__ import annotations

from ninja import NinjaAPI

from crm.api import events, token
from crm.api.framework import JsonParser, install, method_checked
from tagging import api as tagging_api
from tagging.audiences import api as audiences_api
from tagging.offers import api as offers_api

api = NinjaAPI(
    title="Tagwerk API",
    version="1",
    description=(
        "Contacts, their tags, the vocabulary, segments, bulk tag changes, events and offers. "
        "Authenticate with `Authorization: Bearer <token>` (the admin's *API tokens*, or "
        "`manage.py create_api_token`); each operation names the scope it needs. Errors are "
        '`{"error": {"code", "message", "field"}}`; lists are paged with `next_cursor`. '
        "See docs/api.md."),
    urls_namespace="api-v1",
    parser=JsonParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
install(api)

api.add_router("", token.router)
api.add_router("", audiences_api.router)  # /contacts/ (list, create), /segments/, /bulk-…
api.add_router("", tagging_api.contacts_router)  # /contacts/{phone}/ and its tags
api.add_router("", tagging_api.vocabulary_router)  # /dimensions/, /tags/
api.add_router("", events.router)  # /events/ (also at the old /api/events/)
api.add_router("", offers_api.router)  # /offers/…/eligibility/, /contacts/{phone}/offers/


def urls() -> tuple[list, str, str]:
    """``api.urls`` with every view answering unserved methods in the error format."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        pattern.callback = method_checked(pattern.callback)
    return patterns, app_name, namespace
