from __future__ import annotations

import json

import pytest

from campaigns.backends import locmem
from campaigns.intake import app_secret
from campaigns.models import Send, Template
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_create, campaign_launch, template_create
from crm.models import Contact
from tests.campaigns.fake_cloud_api import FakeCloudAPI, sign

TOKEN = "test-token"
WEBHOOK_URL = "/webhooks/whatsapp/"


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


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST a payload signed with the app secret; processing runs (eagerly) on commit."""

    def _post(payload: dict | bytes, signature: str | None = "valid"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {}
        if signature == "valid":
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body, app_secret())
        elif signature:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(WEBHOOK_URL, body, content_type="application/json", **headers)

    return _post


@pytest.fixture
def sent(outbox, contacts, make_campaign):
    """One campaign sent to one contact; returns its Send."""
    contacts(1, salutation="Frau", last_name="Chen")
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    return Send.objects.select_related("contact").get(campaign=campaign)
