"""Signed inbound WhatsApp messages naming an entry point's code, or carrying an ad's referral."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.entrypoints.models import AdSource, Arrival, EntryPointKind
from campaigns.entrypoints.services import entry_point_create
from campaigns.models import Exclusion, InboundMessage, Send, TemplateCategory
from campaigns.services import template_create
from crm.models import ConsentStatus, Contact
from tagging.models import AssignmentHistory, Tag, TagAssignment

PHONE = "+4917612345678"


def tags_of(phone: str) -> set[str]:
    return set(TagAssignment.objects.filter(contact__phone=phone)
               .values_list("tag__name", flat=True))


@pytest.mark.parametrize("text", ["Hallo! MESSE26", "hallo messe26 bis bald", "Messe26?",
                                  "mEsSe26"])
def test_code_anywhere_in_any_case_creates_and_tags_the_contact(post, message,
                                                                make_entry_point, make_tag, text):
    fair = make_tag(name="Messe Köln 2026")
    entry_point = make_entry_point(name="Messe Köln 2026", code="MESSE26", tags=[fair])

    post(message("4917612345678", text))

    contact = Contact.objects.get(phone=PHONE)  # created from the wa_id, in E.164
    assert tags_of(PHONE) == {"Messe Köln 2026"}
    assignment = TagAssignment.objects.get(contact=contact, tag=fair)
    assert assignment.source == "entrypoint"
    history = AssignmentHistory.objects.get(contact=contact, tag=fair)
    assert (history.reason, history.source_ref) == ("entrypoint", f"entrypoint:{entry_point.pk}")
    arrival = Arrival.objects.get()
    assert (arrival.entry_point, arrival.contact, arrival.new_contact) == (
        entry_point, contact, True)
    assert InboundMessage.objects.get().action == "entry point: Messe Köln 2026"


def test_assignment_history_shows_the_entry_point_by_name(post, message, make_entry_point,
                                                          superuser, client):
    entry_point = make_entry_point(name="Paketkarte Herbst", code="PAKET1")
    post(message("4917612345678", "PAKET1"))
    client.force_login(superuser)
    page = client.get(f"/admin/crm/contact/{Contact.objects.get(phone=PHONE).pk}/change/")
    assert "entry point: Paketkarte Herbst" in page.content.decode()
    assert entry_point.name in page.content.decode()  # the "Arrived through" panel


def test_an_existing_contact_is_tagged_and_not_counted_as_new(post, message, make_entry_point,
                                                              make_contact):
    contact = make_contact(phone=PHONE)
    make_entry_point(code="BIO-LINK")
    post(message("4917612345678", "hi bio-link"))
    assert Arrival.objects.get().contact == contact
    assert Arrival.objects.get().new_contact is False
    assert Contact.objects.count() == 1


@pytest.mark.parametrize("text", ["XMESSE26", "MESSE267", "messe26b", "MESSE 26", "hallo"])
def test_a_code_inside_another_word_is_not_a_match(post, message, make_entry_point, text):
    make_entry_point(code="MESSE26")
    post(message("4917612345678", text))
    assert not Contact.objects.exists()  # unknown numbers without a code stay unknown
    assert not Arrival.objects.exists()


@pytest.mark.parametrize("period", ["inactive", "expired", "not_yet"])
def test_inactive_and_expired_entry_points_are_ignored(post, message, make_entry_point,
                                                       make_contact, period):
    now = timezone.now()
    fields = {"inactive": {"active": False},
              "expired": {"active_until": now - timedelta(days=1)},
              "not_yet": {"active_from": now + timedelta(days=1)}}[period]
    make_entry_point(code="MESSE26", **fields)
    make_contact(phone="+4917612340000")
    post(message("4917612345678", "MESSE26"))
    post(message("4917612340000", "MESSE26"))
    assert not Contact.objects.filter(phone=PHONE).exists()
    assert tags_of("+4917612340000") == set()
    assert not Arrival.objects.exists()


def test_the_message_time_decides_whether_the_entry_point_was_active(post, message,
                                                                     make_entry_point):
    # A message written while the fair ran, delivered after it ended, still counts.
    ended = timezone.now() - timedelta(hours=1)
    make_entry_point(code="MESSE26", active_until=ended)
    post(message("4917612345678", "MESSE26", timestamp=int(ended.timestamp()) - 60))
    assert Arrival.objects.count() == 1


def test_consent_is_recorded_with_the_entry_point_as_basis_when_it_says_so(post, message,
                                                                           make_entry_point):
    make_entry_point(name="Newsletter-Button", code="NEWS24", consent=True,
                     consent_text="Mit deiner Nachricht stimmst du WhatsApp-Angeboten zu.")
    make_entry_point(name="Support-QR", code="HILFE1")
    post(message("4917612345678", "NEWS24"))
    post(message("4917612349999", "HILFE1"))

    opted_in = Contact.objects.get(phone=PHONE)
    assert opted_in.consent_status == ConsentStatus.OPTED_IN
    assert opted_in.consent_source == "entry point: Newsletter-Button"
    arrival = Arrival.objects.get(contact=opted_in)
    assert arrival.consented and arrival.consent_text.startswith("Mit deiner Nachricht")
    other = Contact.objects.get(phone="+4917612349999")
    assert other.consent_status == ConsentStatus.UNKNOWN
    assert Arrival.objects.get(contact=other).consented is False


@pytest.mark.parametrize("state", ["opted_out", "blocked"])
def test_writing_to_an_opt_in_entry_point_never_lifts_an_opt_out_or_blocklisting(
        post, message, make_entry_point, make_contact, state):
    contact = make_contact(phone=PHONE, consent_status=(
        ConsentStatus.OPTED_OUT if state == "opted_out" else ConsentStatus.UNKNOWN),
        is_blocked=state == "blocked")
    make_entry_point(code="NEWS24", consent=True, consent_text="Angebote per WhatsApp.")
    post(message("4917612345678", "NEWS24"))
    contact.refresh_from_db()
    assert contact.consent_status != ConsentStatus.OPTED_IN
    assert Arrival.objects.get().consented is False


@pytest.fixture
def welcome(db):
    return template_create(name="willkommen", language="de", category=TemplateCategory.MARKETING,
                           body="Willkommen {{1}}! Antworte STOP zum Abmelden.",
                           variables=[{"source": "first_name", "fallback": "bei uns"}])


def test_welcome_is_sent_exactly_once_across_repeated_messages_and_redeliveries(
        post, message, make_entry_point, welcome, outbox):
    make_entry_point(code="NEWS24", consent=True, consent_text="Angebote per WhatsApp.",
                     welcome_template=welcome)
    first = message("4917612345678", "NEWS24", message_id="wamid.first")
    post(first)
    post(first)  # Meta's retry of the same body
    redelivered = message("4917612345678", "NEWS24", message_id="wamid.first")
    redelivered["entry"][0]["id"] = "another-envelope"  # same message, new body
    post(redelivered)
    post(message("4917612345678", "news24 again", message_id="wamid.second"))

    assert [m["to"] for m in outbox] == [PHONE.lstrip("+")]
    assert outbox[0]["template"]["name"] == "willkommen"
    send = Send.objects.get()
    assert (send.contact.phone, send.status) == (PHONE, "sent")
    assert send.campaign.name == "Welcome · Entry point 1"
    assert Arrival.objects.count() == 2  # two chats started, one welcome


def test_welcome_honours_consent_and_is_decided_once(post, message, make_entry_point, welcome,
                                                     outbox):
    make_entry_point(code="HILFE1", welcome_template=welcome)  # no opt-in by writing
    post(message("4917612345678", "HILFE1"))
    post(message("4917612345678", "HILFE1 nochmal"))
    assert outbox == []
    assert list(Exclusion.objects.values_list("reason", flat=True)) == ["no_consent"]
    assert not Send.objects.exists()


def test_welcome_honours_the_frequency_cap(post, message, make_entry_point, welcome, outbox,
                                           settings):
    settings.CAMPAIGNS_CAP_PER_DAY = 1
    for n, code in enumerate(["NEWS24", "MESSE26"]):
        make_entry_point(code=code, consent=True, consent_text="Angebote per WhatsApp.",
                         welcome_template=welcome, name=f"Point {n}")
    post(message("4917612345678", "NEWS24"))
    post(message("4917612345678", "MESSE26"))
    assert len(outbox) == 1  # the second welcome would be a second marketing message today
    assert Exclusion.objects.get().reason == "frequency_cap"


def test_a_utility_welcome_needs_no_marketing_consent_but_respects_opt_out(
        post, message, make_entry_point, make_contact, outbox):
    utility = template_create(name="danke", language="de", category=TemplateCategory.UTILITY,
                              body="Danke für deine Nachricht!")
    make_contact(phone="+4917612340000", consent_status=ConsentStatus.OPTED_OUT)
    make_entry_point(code="HILFE1", welcome_template=utility)
    post(message("4917612345678", "HILFE1"))
    post(message("4917612340000", "HILFE1"))
    assert [m["to"] for m in outbox] == [PHONE.lstrip("+")]


AD = {"source_url": "https://fb.me/3cr4Wqqkp", "source_id": "120210001", "source_type": "ad",
      "headline": "Herbst-Sale: 20 % auf alles", "body": "Nur diese Woche",
      "media_type": "image", "image_url": "https://example.com/ad.jpg",
      "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4"}


def test_a_referral_is_attributed_to_the_entry_point_mapped_to_its_source_id(
        post, message, make_entry_point):
    autumn = make_entry_point(name="Herbst-Anzeige", code="HERBST")
    make_entry_point(name="Ads", code="ADS-DEFAULT", kind=EntryPointKind.ADS)
    AdSource.objects.create(source_id="120210001", entry_point=autumn)
    post(message("4917612345678", "Ich habe eine Frage", referral=AD))

    arrival = Arrival.objects.get()
    assert arrival.entry_point == autumn
    assert arrival.referral["ctwa_clid"] == AD["ctwa_clid"]
    assert arrival.referral["headline"] == AD["headline"]
    assert "image_url" not in arrival.referral
    assert tags_of(PHONE) == {t.name for t in autumn.tags.all()}


def test_an_unmapped_ad_goes_to_the_default_ads_entry_point_tagged_by_its_headline(
        post, message, make_entry_point, make_tag, make_dimension):
    source = make_dimension(name="Quelle")
    ads = make_entry_point(name="Ads", code="ADS-DEFAULT", kind=EntryPointKind.ADS,
                           tags=[make_tag(name="Anzeige", dimension=source)],
                           headline_dimension=source)
    post(message("4917612345678", "Hallo", referral=AD))
    post(message("4917612340001", "Hallo", referral={**AD, "source_id": "999"}))

    assert set(Arrival.objects.values_list("entry_point", flat=True)) == {ads.pk}
    headline = Tag.objects.get(name="Herbst-Sale: 20 % auf alles")
    assert headline.dimension == source
    assert tags_of(PHONE) == tags_of("+4917612340001") == {"Anzeige", headline.name}


def test_a_referral_without_an_ads_entry_point_changes_nothing(db, post, message):
    post(message("4917612345678", "Hallo", referral=AD))
    assert not Contact.objects.exists()


def test_an_ad_and_a_code_in_one_message_count_for_both(post, message, make_entry_point):
    autumn = make_entry_point(name="Herbst-Anzeige", code="HERBST")
    AdSource.objects.create(source_id="120210001", entry_point=autumn)
    fair = make_entry_point(name="Messe", code="MESSE26")
    post(message("4917612345678", "MESSE26", referral=AD))
    assert set(Arrival.objects.values_list("entry_point", flat=True)) == {autumn.pk, fair.pk}


def test_code_rules_are_checked_when_creating(db):
    from campaigns.entrypoints.services import EntryPointError

    with pytest.raises(EntryPointError, match="not usable"):
        entry_point_create(name="A", code="a b")
    with pytest.raises(EntryPointError, match="consent text"):
        entry_point_create(name="A", code="ABCD", consent=True)
    made = entry_point_create(name="A", code="")
    assert len(made.code) == 6 and made.code.isalnum()
    with pytest.raises(EntryPointError, match="used by another"):
        entry_point_create(name="B", code=made.code.lower())


def test_arrival_times_come_from_the_message(post, message, make_entry_point):
    make_entry_point(code="MESSE26")
    sent_at = int(time.time()) - 3600
    post(message("4917612345678", "MESSE26", timestamp=sent_at))
    assert int(Arrival.objects.get().arrived_at.timestamp()) == sent_at


def test_the_welcome_campaign_keeps_sending_and_obeys_pause_and_cancel(
        post, message, make_entry_point, welcome, outbox):
    from campaigns.models import Campaign, CampaignStatus
    from campaigns.sending import campaign_send_batch
    from campaigns.services import (
        campaign_cancel,
        campaign_finish_if_done,
        campaign_launch,
        campaign_pause,
        campaign_resume,
    )

    make_entry_point(code="NEWS24", consent=True, consent_text="Angebote per WhatsApp.",
                     welcome_template=welcome)
    post(message("4917612345678", "NEWS24"))
    campaign = Campaign.objects.get()
    assert campaign.triggered and campaign.status == CampaignStatus.SENDING
    assert not campaign_finish_if_done(campaign_id=campaign.pk)  # it never completes
    assert campaign_launch(campaign=campaign) is None  # nor is it launched (no snapshot)
    post(message("4917612340001", "NEWS24"))
    assert len(outbox) == 2

    assert campaign_pause(campaign=campaign)
    post(message("4917612340002", "NEWS24"))
    assert len(outbox) == 2 and Send.objects.filter(status="queued").count() == 1
    assert campaign_resume(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    assert len(outbox) == 3

    campaign_cancel(campaign=campaign)
    post(message("4917612340003", "NEWS24"))
    assert len(outbox) == 3 and Send.objects.count() == 3
    assert Arrival.objects.count() == 4  # the arrival itself still counts


def test_a_campaign_with_the_welcome_name_is_not_taken_over(post, message, make_entry_point,
                                                            welcome, outbox):
    from campaigns.services import campaign_create

    make_entry_point(name="Messe", code="MESSE26", consent=True,
                     consent_text="Angebote per WhatsApp.", welcome_template=welcome)
    own = campaign_create(name="Welcome · Messe", template=welcome, audience="purchases > 0")
    post(message("4917612345678", "MESSE26"))
    assert not own.sends.exists()
    assert Send.objects.get().campaign.name == "Welcome · Messe (2)"


def test_hostile_referral_values_are_cleaned_or_ignored(post, message, make_entry_point):
    make_entry_point(name="Ads", code="ADS-DEFAULT", kind=EntryPointKind.ADS)
    # (A NUL or lone surrogate anywhere in a message is refused by PostgreSQL with the
    # stored message itself, before entry points see it: campaigns.webhooks' concern.)
    post(message("4917612345678", "Hallo", referral={
        "source_id": {"nested": 1}, "headline": " Sale! ", "ctwa_clid": ["x"],
        "source_type": 7, "body": None}))
    post(message("4917612340001", "Hallo", referral="not an object"))
    arrival = Arrival.objects.get()
    assert arrival.referral == {"headline": " Sale! ", "source_type": "7"}
