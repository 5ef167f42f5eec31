"""One contract, every sender (as Django tests its mail backends)."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ImproperlyConfigured

from campaigns.backends import (
    Action,
    SendResult,
    TemplateMessage,
    WhatsAppError,
    get_backend,
    locmem,
)
from campaigns.errors import ERROR_ACTIONS
from campaigns.models import SandboxEvent
from tests.campaigns.fake_cloud_api import FakeCloudAPI

MESSAGE = TemplateMessage(name="spring_offer", language="de", components=[
    {"type": "body", "parameters": [{"type": "text", "text": "Frau Chen"}]}])
TO = "+4915123456789"


class BackendContract:
    """Every backend: accepted messages get distinct wamids; refusals raise WhatsAppError."""

    refusable = True

    @pytest.fixture
    def backend(self):
        raise NotImplementedError

    def refuse_next(self, code: int) -> None:
        raise NotImplementedError

    def test_template_send_returns_a_wamid(self, backend):
        result = backend.send_template(to=TO, template=MESSAGE, callback_data="tw:1")
        assert isinstance(result, SendResult) and result.wamid

    def test_each_message_gets_its_own_wamid(self, backend):
        wamids = {backend.send_template(to=TO, template=MESSAGE).wamid for _ in range(3)}
        assert len(wamids) == 3

    def test_text_send_returns_a_wamid(self, backend):
        assert backend.send_text(to=TO, text="Hallo").wamid

    def test_close_can_be_called_and_is_harmless(self, backend):
        backend.close()

    @pytest.mark.parametrize("code,action", [
        (130429, Action.SLOW_NUMBER), (131056, Action.RETRY_RECIPIENT),
        (131048, Action.PAUSE_CAMPAIGN), (131026, Action.FAIL_RECIPIENT),
        (131050, Action.OPT_OUT), (132001, Action.ABORT_CAMPAIGN),
        (368, Action.STOP_ALL), (131000, Action.RETRY_LIMITED),
        (131049, Action.DEFER_RECIPIENT)])
    def test_refusal_raises_with_code_and_action(self, backend, code, action):
        if not self.refusable:
            pytest.skip("this backend accepts everything by design")
        self.refuse_next(code)
        with pytest.raises(WhatsAppError) as caught:
            backend.send_template(to=TO, template=MESSAGE)
        assert (caught.value.code, caught.value.action) == (code, action)
        # The refusal is not sticky.
        assert backend.send_template(to=TO, template=MESSAGE).wamid


class TestLocmemBackend(BackendContract):
    @pytest.fixture
    def backend(self):
        return get_backend("campaigns.backends.locmem.LocmemBackend")

    def refuse_next(self, code):
        locmem.errors[TO] = [code]

    def test_outbox_holds_the_cloud_api_body(self, backend):
        backend.send_template(to=TO, template=MESSAGE, callback_data="tw:7")
        (body,) = locmem.outbox
        assert body["to"] == TO.lstrip("+") and body["type"] == "template"
        assert body["biz_opaque_callback_data"] == "tw:7"


class TestConsoleBackend(BackendContract):
    refusable = False

    @pytest.fixture
    def backend(self):
        self.stream = io.StringIO()
        return get_backend("campaigns.backends.console.ConsoleBackend", stream=self.stream)

    def test_prints_the_message(self, backend):
        backend.send_template(to=TO, template=MESSAGE)
        assert '"spring_offer"' in self.stream.getvalue()


class TestSandboxBackend(BackendContract):
    refusable = False

    @pytest.fixture
    def backend(self, db):
        return get_backend("campaigns.backends.sandbox.SandboxBackend", seed=1)

    def test_schedules_status_webhooks_for_later(self, backend):
        result = backend.send_template(to=TO, template=MESSAGE, callback_data="tw:5")
        bodies = [e.body["entry"][0]["changes"][0]["value"] for e in SandboxEvent.objects.all()]
        statuses = [v["statuses"][0] for v in bodies if "statuses" in v]
        assert statuses[0] == {**statuses[0], "id": result.wamid, "status": "sent",
                               "biz_opaque_callback_data": "tw:5"}
        assert {s["status"] for s in statuses} & {"delivered", "failed"}


class TestCloudAPIBackend(BackendContract):
    @pytest.fixture
    def backend(self, settings):
        with FakeCloudAPI(token="tok") as api:
            self.api = api
            settings.WHATSAPP_GRAPH_BASE_URL = api.url
            yield get_backend("campaigns.backends.cloud_api.CloudAPIBackend",
                              access_token="tok", phone_number_id="106540352242922")

    def refuse_next(self, code):
        self.api.inject(code)

    def test_request_is_the_reference_protocol(self, backend, settings):
        backend.send_template(to=TO, template=MESSAGE, callback_data="tw:9")
        (request,) = self.api.requests
        assert request["body"] == {
            "messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "4915123456789", "type": "template", "biz_opaque_callback_data": "tw:9",
            "template": {"name": "spring_offer", "language": {"code": "de"},
                         "components": MESSAGE.components}}

    def test_wrong_token_stops_all_sending(self, settings):
        with FakeCloudAPI(token="right") as api:
            settings.WHATSAPP_GRAPH_BASE_URL = api.url
            backend = get_backend("campaigns.backends.cloud_api.CloudAPIBackend",
                                  access_token="wrong", phone_number_id="1")
            with pytest.raises(WhatsAppError) as caught:
                backend.send_template(to=TO, template=MESSAGE)
        assert caught.value.code == 190 and caught.value.action == Action.STOP_ALL

    def test_unreachable_server_is_a_safe_retry(self, settings):
        settings.WHATSAPP_GRAPH_BASE_URL = "http://127.0.0.1:8599"
        backend = get_backend("campaigns.backends.cloud_api.CloudAPIBackend",
                              access_token="t", phone_number_id="1")
        with pytest.raises(WhatsAppError) as caught:
            backend.send_template(to=TO, template=MESSAGE)
        assert caught.value.action == Action.RETRY_LIMITED

    def test_missing_credentials_are_named(self, settings):
        settings.WHATSAPP_ACCESS_TOKEN = ""
        with pytest.raises(ImproperlyConfigured, match="WHATSAPP_ACCESS_TOKEN"):
            get_backend("campaigns.backends.cloud_api.CloudAPIBackend")


def test_every_code_of_the_reference_table_has_an_action():
    for code in (130429, 131056, 131048, 131047, 131026, 131049, 131050, 368, 4, 80007,
                 131000, 131016, 132000, 132001, 132015, 132016, 131057, 131031, 131042,
                 130472, 0, 190, 131030):
        assert code in ERROR_ACTIONS
    assert WhatsAppError(999999, http_status=502).action == Action.RETRY_LIMITED
    assert WhatsAppError(999999, http_status=400).action == Action.FAIL_RECIPIENT
