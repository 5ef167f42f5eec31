"""The sidebar inside a page that behaves as Chatwoot's dashboard does: it frames the
Dashboard App URL and posts the conversation's context (``appContext``) into it, on load
and whenever the app asks with ``chatwoot-dashboard-app:fetch-info``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Permission
from guardian.shortcuts import assign_perm

from tagging.models import TagAssignment
from tests.e2e.conftest import PASSWORD
from tests.factories import ContactFactory, DimensionFactory, TagFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONTEXT = {"event": "appContext", "data": {
    "conversation": {"id": 55, "inbox_id": 1, "status": "open",
                     "meta": {"sender": {"id": 101, "name": "Mei Chen"}}},
    "contact": {"id": 101, "name": "Mei Chen", "email": None,
                "phone_number": "+49 151 23000042"},
    "currentAgent": {"id": 3, "name": "Alice", "email": "alice@example.com"}}}

HOST_PAGE = """<!DOCTYPE html><html><body><h1>Chatwoot (host)</h1>
<iframe id="app" src="%(src)s" style="width:360px;height:700px"></iframe>
<script>
const context = JSON.stringify(%(context)s);
const app = document.getElementById("app");
window.asked = 0;
app.addEventListener("load", () => app.contentWindow.postMessage(context, "*"));
window.addEventListener("message", (event) => {
  if (event.data === "chatwoot-dashboard-app:fetch-info") {
    window.asked += 1;
    app.contentWindow.postMessage(context, "*");
  }
});
</script></body></html>"""


@pytest.fixture
def chatwoot_host(live_server):
    """A Chatwoot-like dashboard on its own origin (another port of localhost)."""
    page = (HOST_PAGE % {"src": f"{live_server.url}/chatwoot/sidebar/",
                         "context": json.dumps(CONTEXT)}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_an_agent_adds_a_tag_in_the_sidebar_inside_chatwoot(login, live_server, settings,
                                                              chatwoot_host):
    host = f"http://localhost:{chatwoot_host}"
    settings.CHATWOOT_ORIGIN = host
    interest = DimensionFactory(name="Interest", colour="#2f9e44")
    stage = DimensionFactory(name="Purchase stage", colour="#1971c2", single_choice=True)
    TagFactory(dimension=interest, name="Sports")
    make_up = TagFactory(dimension=interest, name="Make-up")
    TagFactory(dimension=stage, name="Paid")
    contact = ContactFactory(phone="+4915123000042", first_name="Mei", last_name="Chen")
    TagAssignment.objects.create(contact=contact, tag=make_up)
    agent = UserFactory(username="alice", email="alice@example.com", is_staff=True,
                        password=PASSWORD)
    agent.user_permissions.add(Permission.objects.get(codename="view_contact"))
    assign_perm("tagging.apply_dimension_tags", agent, interest)

    page = login(agent)
    page.goto(f"{host}/conversations/55")
    app = page.frame_locator("#app")
    app.locator("#tw-contact").wait_for()
    assert "Mei Chen" in app.locator("#tw-contact").inner_text()
    assert app.locator("[data-tag='Make-up']").is_visible()
    # Only the granted dimension is offered.
    options = app.locator("#tw-add-tag option").all_inner_texts()
    assert "Sports" in options and "Paid" not in options

    app.locator("#tw-add-tag").select_option(label="Sports")
    app.get_by_role("button", name="Add", exact=True).click()
    app.get_by_text("Saved.").wait_for()

    assert set(contact.tag_assignments.values_list("tag__name", flat=True)) == {
        "Make-up", "Sports"}
    assert app.locator("[data-tag='Sports']").is_visible()
    assert "by alice in Chatwoot" in app.locator("#tw-tags").inner_text()

    # The app asks Chatwoot again for the context when the agent refreshes it.
    asked = page.evaluate("window.asked")
    app.get_by_role("button", name="Refresh").click()
    page.wait_for_function(f"window.asked > {asked}")


def test_another_origin_cannot_frame_the_sidebar(login, live_server, settings, chatwoot_host):
    settings.CHATWOOT_ORIGIN = "https://chat.example.com"
    page = login()
    page.goto(f"http://localhost:{chatwoot_host}/conversations/55")
    page.wait_for_timeout(1000)
    frame = page.frame_locator("#app")
    assert frame.locator("#tw-sidebar").count() == 0
