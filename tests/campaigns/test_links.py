"""Tracked links: ``link:<url>`` variables, the ``/l/<token>/`` redirect, clicks in reports
and in event rules."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from campaigns.content import message_for, render_preview, template_checks
from campaigns.journeys.models import Journey
from campaigns.links import link_click, link_token
from campaigns.models import Send, SendStatus
from campaigns.selectors import campaign_report
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_launch, template_create
from crm.models import Event, EventKind
from tagging.models import TagAssignment
from tagging.rules.models import Rule, RuleTrigger
from tagging.rules.services import rule_save

pytestmark = pytest.mark.django_db
TARGET = "https://shop.example.de/fruehling?x=1"
LINK = re.compile(r"https://go\.example\.de/l/([^/\s]+)/")


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.TAGWERK_PUBLIC_URL = "https://go.example.de/"


@pytest.fixture
def link_template(db):
    return template_create(
        name="spring_link", language="de",
        body="Hallo {{1}}, hier geht's zum Angebot: {{2}} Antworte STOP zum Abmelden.",
        variables=["first_name", f"link:{TARGET}"])


@pytest.fixture
def link_sends(outbox, contacts, make_campaign, link_template):
    """A campaign with a tracked link sent to three contacts."""
    contacts(3, first_name="Mia")
    campaign = make_campaign(template=link_template)
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    return list(Send.objects.filter(campaign=campaign).order_by("id"))


def _link_in(message) -> str:
    """The second body parameter of a TemplateMessage or of its API dict."""
    components = message["components"] if isinstance(message, dict) else message.components
    values = [p["text"] for c in components if c["type"] == "body" for p in c["parameters"]]
    return values[1]


def test_each_send_gets_its_own_short_tracked_link(link_sends, outbox):
    links = {_link_in(m["template"]) for m in outbox}
    assert len(links) == 3
    for link in links:
        assert LINK.fullmatch(link) and len(link) < 60


def test_preview_and_checks_show_the_target_itself(link_template, make_contact):
    contact = make_contact(first_name="Mia")
    assert TARGET in render_preview(link_template, contact)
    assert _link_in(message_for(link_template, contact)) == TARGET
    assert not [c for c in template_checks(link_template) if c.code == "unknown_variable"]


def test_a_link_to_something_other_than_http_is_refused_before_launch(db):
    bad = template_create(name="bad_link", language="de", body="Hier: {{1}}",
                          variables=["link:javascript:alert(1)"])
    assert [c.code for c in template_checks(bad)].count("unknown_variable") == 1


def test_a_click_records_one_event_stamps_the_send_and_redirects(link_sends, client,
                                                                 django_capture_on_commit_callbacks):
    send = link_sends[0]
    token = link_token(send.pk, 1)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.get(f"/l/{token}/")
        again = client.get(f"/l/{token}/")  # a double tap within the minute counts once
    assert first.status_code == again.status_code == 302
    assert first["Location"] == TARGET
    event = Event.objects.get(kind=EventKind.LINK_CLICKED)
    assert event.contact_id == send.contact_id
    assert event.payload == {"url": TARGET, "campaign": send.campaign_id, "send": send.pk}
    send.refresh_from_db()
    stamped = send.clicked_at
    assert stamped is not None
    link_click(token=token, now=timezone.now() + timedelta(hours=1))
    send.refresh_from_db()
    assert send.clicked_at == stamped  # the first click stays
    send.contact.refresh_from_db()
    assert send.contact.last_interaction_at is not None  # a click is the contact's doing
    assert Event.objects.filter(kind=EventKind.LINK_CLICKED).count() == 2


def test_a_head_request_redirects_without_recording(link_sends, client):
    response = client.head(f"/l/{link_token(link_sends[0].pk, 1)}/")
    assert response.status_code == 302 and not Event.objects.filter(
        kind=EventKind.LINK_CLICKED).exists()


def test_a_token_for_a_variable_that_is_no_link_is_not_found(link_sends, client):
    response = client.get(f"/l/{link_token(link_sends[0].pk, 0)}/")  # first_name
    assert response.status_code == 404
    assert "This link does not work" in response.content.decode()


def test_report_counts_clicks_against_delivered(link_sends, client, superuser):
    Send.objects.filter(pk__in=[s.pk for s in link_sends[:2]]).update(
        status=SendStatus.DELIVERED)
    link_click(token=link_token(link_sends[0].pk, 1))
    report = campaign_report(link_sends[0].campaign)
    assert (report["clicked"], report["click_rate"]) == (1, 0.5)
    client.force_login(superuser)
    campaign = link_sends[0].campaign
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert re.search(r'data-key="clicked">1 \(50', page)
    export = client.get(f"/admin/campaigns/campaign/{campaign.pk}/export/")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode()
                                           if export.streaming else export.content.decode())))
    assert sum(1 for r in rows if r["clicked_at"]) == 1


def test_a_rule_on_link_clicked_tags_the_clicker(link_sends, make_tag,
                                                 django_capture_on_commit_callbacks):
    interested = make_tag(name="Interessiert")
    rule_save(rule=Rule(name="Clicked", segment="", trigger=RuleTrigger.EVENT,
                        event_kind=EventKind.LINK_CLICKED), add_tags=[interested],
              remove_tags=[])
    with django_capture_on_commit_callbacks(execute=True):
        link_click(token=link_token(link_sends[1].pk, 1))
    assert set(TagAssignment.objects.values_list("contact_id", flat=True)) == {
        link_sends[1].contact_id}


tokens = st.one_of(
    st.text(min_size=1, max_size=80),
    st.from_regex(r"[0-9A-Za-z]{1,12}\.[0-9]{1,4}\.[0-9a-f]{0,20}", fullmatch=True),
    st.builds(lambda t, c: t[:-1] + c, st.just("1.1.0123456789abcdef"),
              st.sampled_from("0123456789abcdef")),
)


@hypothesis_settings(max_examples=250, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=tokens)
def test_no_forged_or_garbled_token_answers_anything_but_404(link_sends, client, token):
    genuine = {link_token(s.pk, 1) for s in link_sends}
    response = client.get(f"/l/{quote(token, safe='')}/")
    if token in genuine:
        assert response.status_code == 302
    else:
        assert response.status_code == 404
    assert not Event.objects.filter(kind=EventKind.LINK_CLICKED).exclude(
        payload__send__in=[s.pk for s in link_sends]).exists()


def test_link_clicked_is_a_trigger_rules_and_journeys_offer():
    for field in (Rule._meta.get_field("event_kind"),
                  Journey._meta.get_field("trigger_event_kind")):
        assert EventKind.LINK_CLICKED in dict(field.choices)


# --- URL buttons: the tracked link is the suffix of an approved …/l/{{1}} address -------

SHOP = "https://shop.example.de/sale"


@pytest.fixture
def button_template(db):
    return template_create(
        name="spring_button", language="de", body="Hallo {{1}}! Antworte STOP zum Abmelden.",
        variables=["first_name"],
        buttons=[{"type": "quick_reply", "text": "Stop"},
                 {"type": "url", "text": "Zum Angebot", "url": "https://go.example.de/l/{{1}}",
                  "source": f"link:{SHOP}"}])


def _button_suffix(message) -> tuple[str, str]:
    components = message["components"] if isinstance(message, dict) else message.components
    [button] = [c for c in components if c["type"] == "button"]
    return button["index"], button["parameters"][0]["text"]


def test_a_url_button_carries_each_sends_own_token_and_the_click_is_recorded(
        outbox, contacts, make_campaign, button_template, client,
        django_capture_on_commit_callbacks):
    contacts(2, first_name="Mia")
    campaign = make_campaign(template=button_template)
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    suffixes = [_button_suffix(m["template"]) for m in outbox]
    assert {index for index, _ in suffixes} == {"1"}  # the URL button is the second button
    assert len({token for _, token in suffixes}) == 2
    with django_capture_on_commit_callbacks(execute=True):
        # WhatsApp opens the approved address with the suffix appended: no trailing slash.
        response = client.get(f"/l/{suffixes[0][1]}")
    assert response.status_code == 302 and response["Location"] == SHOP
    event = Event.objects.get(kind=EventKind.LINK_CLICKED)
    assert event.payload["url"] == SHOP
    assert Send.objects.filter(clicked_at__isnull=False).count() == 1


def test_a_test_send_buttons_link_leads_to_the_target_and_records_nothing(
        button_template, make_contact, client):
    _index, token = _button_suffix(message_for(button_template, make_contact()))
    response = client.get(f"/l/{token}")
    assert response.status_code == 302 and response["Location"] == SHOP
    assert not Event.objects.filter(kind=EventKind.LINK_CLICKED).exists()


def test_button_checks_say_what_whatsapp_would_refuse(db):
    template = template_create(
        name="bad_buttons", language="de", body="Hallo", variables=[],
        buttons=[{"type": "url", "text": "Zum Angebot", "url": "https://shop.example.de/{{1}}",
                  "source": f"link:{SHOP}"},
                 {"type": "url", "text": "Bestellung", "url": "https://shop.example.de/o/{{1}}"},
                 {"type": "quick_reply", "text": "Ein viel zu langer Knopftext hier"}])
    messages = {c.code: c.message for c in template_checks(template)}
    assert "must be https://go.example.de/l/{{1}}" in messages["button_link_address"]
    assert "“Bestellung” ends in {{1}} but names no source" in messages["button_unmapped"]
    assert "allows 25" in messages["button_text_too_long"]
    good = {c.code for c in template_checks(template_create(
        name="good_button", language="de", body="Hallo", variables=[],
        buttons=[{"type": "url", "text": "Bestellung", "url": "https://shop.example.de/o/{{1}}",
                  "source": "attributes.order_id"}]))}
    assert not good & {"button_link_address", "button_unmapped", "unknown_variable"}


def test_a_button_with_another_source_sends_its_value(make_contact, db):
    template = template_create(
        name="order_button", language="de", body="Hallo", variables=[],
        buttons=[{"type": "url", "text": "Bestellung", "url": "https://shop.example.de/o/{{1}}",
                  "source": "attributes.order_id"}])
    contact = make_contact(attributes={"order_id": "A-1234"})
    assert _button_suffix(message_for(template, contact)) == ("0", "A-1234")


@pytest.mark.parametrize("source", [None, "attribute.order_id"])  # none, or a typo
def test_a_url_button_without_a_known_source_still_sends_a_test_message(outbox, db, source):
    """The checks block a launch; a test send (and a journey's triggered send, which is never
    launched) must not crash on it: the suffix gets the fallback, as a body variable does."""
    from campaigns.services import template_test_send

    button = {"type": "url", "text": "Bestellung", "url": "https://shop.example.de/o/{{1}}"}
    if source:
        button["source"] = source
    template = template_create(name="order_button", language="de", body="Hallo!",
                               buttons=[button])
    template_test_send(template=template, phone="+4915123000009")
    assert _button_suffix(outbox[-1]["template"]) == ("0", "–")


def test_a_url_buttons_tracked_link_works_after_a_button_written_as_plain_text(
        make_contact, client, db):
    """The button's index is its place among all the buttons, as WhatsApp counts them, both
    in the message and when the tap is resolved."""
    template = template_create(
        name="plain_stop", language="de", body="Hallo!",
        buttons=["Stop", {"type": "url", "text": "Zum Angebot",
                          "url": "https://go.example.de/l/{{1}}", "source": f"link:{SHOP}"}])
    index, token = _button_suffix(message_for(template, make_contact()))
    assert index == "1"
    response = client.get(f"/l/{token}")
    assert response.status_code == 302 and response["Location"] == SHOP
