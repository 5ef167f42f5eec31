"""Issue #16, item by item: what a marketer, an agent or a tag administrator saw on main.

Each test names the item of the issue's “Seen” list it holds. Pages are read as a person
reads them: the visible text (tags stripped), in German or Chinese where that matters.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from campaigns.models import Campaign, Exclusion, Send, SendStatus
from campaigns.services import campaign_create, template_create
from crm.events import EventIn, events_record
from crm.models import ConsentStatus
from tagging.audiences.services import bulk_operation_start, bulk_preview
from tagging.imports.models import ImportJob, ImportStatus
from tagging.insight.services import dashboard_snapshot_refresh
from tagging.models import Source
from tagging.roles import AGENTS, MARKETERS, TAG_ADMINISTRATORS
from tagging.rules.models import Rule
from tagging.services import tags_change
from tests.factories import ContactFactory, DimensionFactory, TagFactory, UserFactory

CHANGELIST = "admin:crm_contact_changelist"


def text(response) -> str:
    """What a person sees: the page without tags, scripts and styles, spaces folded."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def member(role: str, **fields):
    user = UserFactory(is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def vocabulary(db):
    interest = DimensionFactory(name="Interesse", colour="#D6336C")
    stage = DimensionFactory(name="Kaufphase", colour="#2F9E44", single_choice=True)
    return {"vip": TagFactory(name="VIP", dimension=interest),
            "makeup": TagFactory(name="Interesse-Make-up", dimension=interest),
            "ordered": TagFactory(name="Bestellt", dimension=stage),
            "done": TagFactory(name="Abgeschlossen", dimension=stage)}


# --- 1. English only ----------------------------------------------------------------------

@pytest.mark.parametrize(("language", "title", "action"), [
    ("de", "Kontakt zur Änderung auswählen", "Ausgewählte Kontakte löschen"),
    ("zh-hans", "选择 联系人 来修改", "删除所选的 联系人"),
])
def test_1_the_contact_list_speaks_german_and_chinese(client, superuser, language, title,
                                                      action):
    ContactFactory()
    client.force_login(superuser)
    response = client.get(reverse(CHANGELIST), HTTP_ACCEPT_LANGUAGE=language)
    page = text(response)
    assert title in page
    assert action in page
    heading = re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S).group(1)
    assert "contact" not in heading  # no English model name in the page's title


def test_1_the_language_a_person_chose_follows_them_to_another_browser(client, superuser):
    client.force_login(superuser)
    response = client.post(reverse("language_set"), {"language": "zh-hans", "next": "/admin/"})
    assert response.status_code == 302
    client.logout()
    client.force_login(superuser)  # a new session, and a browser asking for English
    page = text(client.get(reverse(CHANGELIST), HTTP_ACCEPT_LANGUAGE="en"))
    assert "选择 联系人 来修改" in page


def test_1_dates_and_numbers_follow_the_locale(client, superuser, vocabulary):
    ContactFactory(last_interaction_at=datetime(2026, 3, 14, 9, 5, tzinfo=ZoneInfo("UTC")))
    client.force_login(superuser)
    page = text(client.get(reverse(CHANGELIST), HTTP_ACCEPT_LANGUAGE="de"))
    assert "14. März 2026" in page


# --- 2. Bare refusal pages ------------------------------------------------------------------

def test_2_a_marketer_refused_tag_definition_sees_why_who_can_help_and_a_way_back(client, db):
    member(TAG_ADMINISTRATORS, username="tanja")
    marketer = member(MARKETERS)
    client.force_login(marketer)
    response = client.get("/admin/tagging/tag/add/", HTTP_ACCEPT_LANGUAGE="de",
                          HTTP_REFERER="http://testserver/admin/crm/contact/")
    assert response.status_code == 403
    page = text(response)
    assert "Nur Tag-Administratoren legen Tags an." in page
    assert "tanja" in page  # who can help
    assert 'href="http://testserver/admin/crm/contact/"' in response.content.decode()
    assert 'id="header"' in response.content.decode()  # the admin's look, not a bare page


def test_2_a_missing_record_gets_the_admins_look(client, superuser, settings):
    settings.DEBUG = False
    client.force_login(superuser)
    response = client.get("/admin/no-such-page/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 404
    assert "此地址下没有内容" in text(response)
    assert 'id="tw-back"' in response.content.decode()


def test_2_the_dashboard_links_the_health_report_only_to_those_who_may_open_it(client, db):
    from tagging.insight.services import health_report_create

    health_report_create()
    client.force_login(member(MARKETERS))
    page = client.get("/admin/").content.decode()
    assert "insight/healthreport/" not in page.split('id="tw-health"')[1].split("</section>")[0]
    assert 'id="tw-report-closed"' in page


# --- 3. Raw codes and JSON ----------------------------------------------------------------

def test_3_import_failure_reasons_are_sentences(client, superuser):
    job = ImportJob.objects.create(
        consent_basis="unknown", status=ImportStatus.DONE, rows=10, failed=6,
        errors={"invalid_phone": 3, "duplicate_in_file": 2, "unknown_tag": 1},
        original_name="messe.csv")
    client.force_login(superuser)
    page = text(client.get(reverse("admin:imports_importjob_job", args=[job.pk]),
                           HTTP_ACCEPT_LANGUAGE="de"))
    for code in ("invalid_phone", "duplicate_in_file", "unknown_tag"):
        assert code not in page
    assert "ungültige Telefonnummer" in page


@pytest.fixture
def template(db):
    return template_create(name="spring_offer", language="de",
                           body="Hallo {{1}}! Antworte STOP zum Abmelden.",
                           variables=["salutation_last_name"])


def test_3_exclusions_and_whatsapp_errors_are_sentences(client, superuser, template):
    campaign = campaign_create(name="Frühling", template=template, audience="purchases >= 0")
    Campaign.objects.filter(pk=campaign.pk).update(launched_at=timezone.now(),
                                                   status="completed")
    people = [ContactFactory() for _ in range(4)]
    Exclusion.objects.create(campaign=campaign, contact=people[0], reason="no_consent")
    Exclusion.objects.create(campaign=campaign, contact=people[1], reason="opted_out")
    Send.objects.create(campaign=campaign, contact=people[2], phone=people[2].phone,
                        status=SendStatus.FAILED, error_code=131026)
    client.force_login(superuser)
    page = text(client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
                           HTTP_ACCEPT_LANGUAGE="de"))
    assert "no_consent" not in page and "opted_out" not in page
    assert "noch keine Marketing-Einwilligung" in page
    assert "Die Nachricht konnte nicht zugestellt werden" in page  # what 131026 means
    assert "Klären Sie die Nummer mit dem Kunden" in page          # and what to do
    sends = text(client.get(reverse("admin:campaigns_send_changelist"),
                            HTTP_ACCEPT_LANGUAGE="de"))
    assert "Klären Sie die Nummer mit dem Kunden" in sends


def test_3_a_bulk_operation_shows_its_preview_as_a_table_not_json(client, superuser,
                                                                  vocabulary):
    ids = [ContactFactory().pk for _ in range(3)]
    preview = bulk_preview(contacts=ids, add=[vocabulary["vip"]], remove=[], actor=superuser)
    bulk = bulk_operation_start(contacts=ids, add=[vocabulary["vip"]], actor=superuser,
                                preview=preview)
    client.force_login(superuser)
    response = client.get(reverse("admin:audiences_bulkoperation_change", args=[bulk.pk]))
    page = text(response)
    assert '{"' not in page and "'tag'" not in page
    assert 'class="tw-preview-table"' in response.content.decode()


def test_3_no_json_on_the_contact_page_and_schedules_in_words(client, superuser):
    contact = ContactFactory(attributes={})
    Rule.objects.create(name="Nachts", segment="purchases > 3", schedule_crontab="10 3 * * *")
    client.force_login(superuser)
    page = text(client.get(reverse("admin:crm_contact_change", args=[contact.pk]),
                           HTTP_ACCEPT_LANGUAGE="de"))
    assert "{}" not in page
    rules = text(client.get(reverse("admin:rules_rule_changelist"),
                            HTTP_ACCEPT_LANGUAGE="de"))
    assert "cron 10 3" not in rules and "Um 03:10" in rules


def test_3_the_grant_form_speaks_to_a_tag_administrator(client, superuser, vocabulary):
    client.force_login(superuser)
    dimension = vocabulary["vip"].dimension
    response = client.post(
        reverse("admin:tagging_dimension_permissions", args=[dimension.pk]),
        {"user": "niemand", "submit_manage_user": "1"}, HTTP_ACCEPT_LANGUAGE="en")
    page = text(response)
    assert "USERNAME_FIELD" not in page
    assert "Nobody logs in with this name" in page


# --- 4. The campaign page -------------------------------------------------------------------

def test_4_the_campaign_page_shows_audience_exclusions_checks_and_a_launch_button(
        client, superuser, template):
    for _ in range(3):
        ContactFactory(purchase_count=5)
    ContactFactory(purchase_count=5, consent_status=ConsentStatus.OPTED_OUT)
    ContactFactory(purchase_count=5, consent_status=ConsentStatus.UNKNOWN)
    campaign = campaign_create(name="VIP-Abend", template=template, audience="purchases > 3")
    client.force_login(superuser)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="de")
    html, page = response.content.decode(), text(response)
    assert re.search(r'id="tw-audience-size" data-value="5"', html)
    assert re.search(r'id="tw-recipients" data-value="3"', html)
    assert "hat Marketing abbestellt" in page and "noch keine Marketing-Einwilligung" in page
    assert "Prüfungen vor dem Start" in page
    assert 'id="tw-launch"' in html
    assert not Send.objects.exists()  # the estimate changed nothing

    client.post(reverse("admin:campaigns_campaign_launch", args=[campaign.pk]))
    campaign.refresh_from_db()
    assert campaign.status in ("sending", "completed")
    assert Send.objects.filter(campaign=campaign).count() == 3
    html = client.get(url).content.decode()
    assert 'id="tw-launch"' not in html
    assert 'id="tw-pause"' in html or campaign.status == "completed"


def test_4_a_send_at_night_in_the_recipients_zone_is_warned_about(client, superuser, template):
    for _ in range(2):
        ContactFactory(country="DE")
    at = datetime(2026, 5, 12, 2, 33, tzinfo=ZoneInfo("Europe/Berlin"))
    campaign = campaign_create(name="Nachts", template=template, audience="purchases >= 0",
                               scheduled_at=at)
    client.force_login(superuser)
    response = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
                          HTTP_ACCEPT_LANGUAGE="de")
    page = text(response)
    assert 'id="tw-night-warning"' in response.content.decode()
    assert "DE 02:33 (2)" in page


# --- 5. Manage tags -------------------------------------------------------------------------

def _manage(client, contacts, **data):
    return client.post(reverse(CHANGELIST), {
        "action": "manage_tags", "select_across": "0",
        "_selected_action": [c.pk for c in contacts], **data}, HTTP_ACCEPT_LANGUAGE="de")


def test_5_manage_tags_is_a_chip_picker_with_the_selection_size_and_counts(client, superuser,
                                                                           vocabulary):
    people = [ContactFactory() for _ in range(4)]
    tags_change(contacts=people[:3], add=[vocabulary["vip"]], source=Source.SYSTEM)
    client.force_login(superuser)
    response = _manage(client, people)
    html, page = response.content.decode(), text(response)
    assert "4 Kontakte ausgewählt." in page
    assert 'id="tw-picker-search"' in html
    assert "--tw-colour:#D6336C" in html                       # coloured by dimension
    assert "eines pro Kontakt: Hinzufügen ersetzt das andere" in page  # single choice
    pk = vocabulary["vip"].pk
    vip = re.search(rf'value="{pk}"[^>]*> \+ <span class="tw-count-gain">(\d+)', html)
    assert vip and vip.group(1) == "1"                          # one of four would gain VIP


def test_5_removing_a_tag_nobody_holds_says_so(client, superuser, vocabulary):
    people = [ContactFactory() for _ in range(2)]
    client.force_login(superuser)
    response = _manage(client, people, tw_step="preview", remove=[vocabulary["makeup"].pk])
    assert 'id="tw-no-effect"' in response.content.decode()
    assert "Interesse-Make-up" in text(response)


# --- 6. Read-only records ----------------------------------------------------------------------

def test_6_records_are_read_only_pages(client, superuser, vocabulary):
    bulk = bulk_operation_start(contacts=[ContactFactory().pk], add=[vocabulary["vip"]],
                                actor=superuser)
    client.force_login(superuser)
    response = client.get(reverse("admin:audiences_bulkoperation_change", args=[bulk.pk]))
    html = response.content.decode()
    assert 'name="_save"' not in html and "Change bulk" not in html
    assert 'id="tw-undo"' in html  # the action that applies
    upload = client.get(reverse("admin:imports_importjob_add")).content.decode()
    assert 'name="_addanother"' not in upload and 'name="_continue"' not in upload


# --- 7. Agents ------------------------------------------------------------------------------------

def test_7_an_agent_sees_the_profile_their_dimensions_and_nothing_for_marketers(client,
                                                                             vocabulary):
    agent = member(AGENTS)
    assign_perm("tagging.apply_dimension_tags", agent, vocabulary["vip"].dimension)
    contact = ContactFactory()
    client.force_login(agent)
    form = client.get(reverse("admin:crm_contact_change", args=[contact.pk])).content.decode()
    assert 'name="consent_status"' not in form and 'name="is_blocked"' not in form
    assert 'name="first_name"' in form  # the profile stays editable
    listing = client.get(reverse(CHANGELIST)).content.decode()
    for action in ("export_contacts_csv", "export_contacts_xlsx", "manage_tags"):
        assert f'value="{action}"' not in listing
    start = client.get("/admin/").content.decode()
    assert 'id="tw-dashboard"' not in start and 'id="tw-agent-start"' in start


def test_7_an_agent_typing_a_tag_outside_their_grants_gets_a_hint(client, vocabulary):
    agent = member(AGENTS)
    assign_perm("tagging.apply_dimension_tags", agent, vocabulary["vip"].dimension)
    contact = ContactFactory()
    client.force_login(agent)
    data = client.get(reverse("admin:crm_contact_tag_search", args=[contact.pk]),
                      {"q": "Bestellt"}, HTTP_ACCEPT_LANGUAGE="de").json()
    assert data["results"] == []
    assert "„Bestellt“ gehört zu „Kaufphase“" in data["hint"]


# --- 8. The dashboard ---------------------------------------------------------------------------

def test_8_the_dashboard_refreshes_in_the_background_after_changes(
        client, superuser, vocabulary, django_capture_on_commit_callbacks):
    ContactFactory()
    dashboard_snapshot_refresh(now=timezone.now() - timedelta(minutes=30))
    ContactFactory()  # an import, a bulk change or a launch since the snapshot
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        page = client.get("/admin/").content.decode()
    assert 'id="tw-updating"' in page and 'id="tw-freshness"' in page
    assert queued  # a refresh was queued
    fresh = client.get("/admin/").content.decode()
    assert 'id="kpi-contacts">2<' in fresh  # (the eager worker already ran it)


def test_8_the_churn_chart_says_what_it_counts_and_when_history_is_short(client, superuser):
    churn = TagFactory(name="Drohender Abwanderer")
    tags_change(contacts=[ContactFactory()], add=[churn], source=Source.SYSTEM)
    dashboard_snapshot_refresh()
    client.force_login(superuser)
    response = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="de")
    html = response.content.decode()
    assert 'id="tw-churn-history"' in html      # not eleven weeks of 0 %
    assert 'id="tw-churn-definition"' in html   # and how it differs from “churn risk”
    assert "Nicht dasselbe wie „Abwanderungsrisiko“" in text(response)


# --- 10. The contact's timeline ------------------------------------------------------------------

def test_10_the_contact_page_has_a_timeline_newest_first_and_paginated(client, superuser,
                                                                       vocabulary, template):
    contact = ContactFactory()
    now = timezone.now()
    events_record(events=[EventIn(kind="purchase", contact_id=contact.pk, product="Lippenstift",
                                  occurred_at=now - timedelta(days=d)) for d in range(1, 31)])
    tags_change(contacts=[contact], add=[vocabulary["vip"]], source=Source.MANUAL,
                actor=superuser)
    campaign = campaign_create(name="Sommer", template=template, audience="purchases >= 0")
    Send.objects.create(campaign=campaign, contact=contact, phone=contact.phone,
                        status=SendStatus.READ, sent_at=now - timedelta(hours=1),
                        read_at=now - timedelta(minutes=30))
    client.force_login(superuser)
    response = client.get(reverse("admin:crm_contact_change", args=[contact.pk]),
                          HTTP_ACCEPT_LANGUAGE="de")
    html = response.content.decode()
    timeline = html.split('id="tw-timeline"')[1]
    kinds = re.findall(r'data-kind="(\w+)"', timeline)
    assert kinds[:2] == ["tag", "message"]                  # newest first
    assert "Tag „VIP“ hinzugefügt" in timeline
    assert "Nachricht von „Sommer“" in timeline
    assert len(kinds) == 25 and 'data-tw-more' in timeline  # a page, and a link to more
    more = re.search(r'href="([^"]+)" data-tw-more', timeline).group(1).replace("&amp;", "&")
    older = client.get(more).content.decode()
    assert len(re.findall(r'data-kind="event"', older)) == 7
