from __future__ import annotations

import pytest

from campaigns.backends import locmem
from campaigns.models import Template
from campaigns.services import campaign_create, template_create
from crm.models import Contact
from tests.campaigns.fake_cloud_api import FakeCloudAPI

TOKEN = "test-token"


@pytest.fixture(autouse=True)
def _outbox(settings):
    settings.WHATSAPP_APP_SECRET = "test-app-secret"
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def outbox():
    return locmem.outbox


@pytest.fixture
def fake_api(settings):
    with FakeCloudAPI(token=TOKEN) as api:
        settings.WHATSAPP_BACKEND = "campaigns.backends.cloud_api.CloudAPIBackend"
        settings.WHATSAPP_GRAPH_BASE_URL = api.url
        settings.WHATSAPP_ACCESS_TOKEN = TOKEN
        settings.WHATSAPP_PHONE_NUMBER_ID = "106540352242922"
        yield api


@pytest.fixture
def template(db) -> Template:
    return template_create(
        name="spring_offer", language="de",
        body="Hallo {{1}}, 15% auf alles bis Sonntag! Antworte STOP zum Abmelden.",
        variables=["salutation_last_name"])


@pytest.fixture
def contacts(make_contact):
    def make(n: int, **fields) -> list[Contact]:
        return [make_contact(**fields) for _ in range(n)]
    return make


@pytest.fixture
def make_campaign(db, template):
    counter = iter(range(1, 10_000))

    def make(audience: str = "purchases >= 0", **fields):
        fields.setdefault("rate_per_second", 2000)
        return campaign_create(name=f"Campaign {next(counter)}",
                               template=fields.pop("template", template),
                               audience=audience, **fields)
    return make


