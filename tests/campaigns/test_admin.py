"""The campaign pages staff use: list at a glance, report, actions, CSV, drill-down."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.models import CampaignStatus, Send, SendStatus
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_launch


@pytest.fixture
def admin_client_(client, superuser):
    client.force_login(superuser)
    return client


def test_campaign_list_shows_rates_without_a_query_per_row(
        admin_client_, make_campaign, contacts, outbox, django_assert_max_num_queries):
    contacts(4)
    for _ in range(3):
        campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    Send.objects.filter(campaign=campaign).update(status=SendStatus.READ)
    with django_assert_max_num_queries(12):
        response = admin_client_.get(reverse("admin:campaigns_campaign_changelist"))
    assert response.status_code == 200
    assert "100.0%" in response.content.decode()


def test_change_page_shows_checks_before_and_the_report_after_launch(
        admin_client_, make_campaign, contacts, outbox):
    contacts(2)
    campaign = make_campaign()
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    assert "All checks passed" in admin_client_.get(url).content.decode()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    page = admin_client_.get(url).content.decode()
    assert 'id="campaign-report"' in page and "CSV export" in page


def test_actions_pause_resume_cancel(admin_client_, make_campaign, contacts):
    contacts(2)
    campaign = make_campaign()
    url = reverse("admin:campaigns_campaign_changelist")

    def act(action):
        admin_client_.post(url, {"action": action, "_selected_action": [campaign.pk]})
        campaign.refresh_from_db()
        return campaign.status

    assert act("launch") in (CampaignStatus.SENDING, CampaignStatus.COMPLETED)
    assert act("pause") == CampaignStatus.PAUSED
    assert act("resume") == CampaignStatus.SENDING
    assert act("cancel") == CampaignStatus.CANCELLED


def test_launch_action_reports_blocking_checks(admin_client_, make_campaign, contacts):
    contacts(1, consent_status="unknown")
    campaign = make_campaign()
    response = admin_client_.post(reverse("admin:campaigns_campaign_changelist"),
                                  {"action": "launch", "_selected_action": [campaign.pk]},
                                  follow=True)
    assert "agreed to receive" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_invalid_audience_is_a_form_error_not_a_500(admin_client_, template):
    response = admin_client_.post(reverse("admin:campaigns_campaign_add"), {
        "name": "x", "template": template.pk, "audience": '"VIP" AND', "suppression": "",
        "ab_config": "{}", "followup_after_days": 3})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()


def test_csv_export_lists_every_recipient(admin_client_, make_campaign, contacts, outbox):
    people = contacts(3)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    response = admin_client_.get(reverse("admin:campaigns_campaign_export", args=[campaign.pk]))
    lines = response.content.decode().strip().splitlines()
    assert lines[0].startswith("phone,name,variant,status")
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(p.phone for p in people)


def test_recipient_drill_down_shows_status_history(admin_client_, make_campaign, contacts,
                                                   outbox):
    from campaigns.webhooks import payload_apply
    from tests.campaigns.fake_cloud_api import status_payload

    contacts(1)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    send = Send.objects.get(campaign=campaign)
    payload_apply(payload=status_payload(send.wamid, "delivered", send.phone,
                                         timestamp=1700000000))
    page = admin_client_.get(reverse("admin:campaigns_send_change", args=[send.pk]))
    assert page.status_code == 200 and "delivered" in page.content.decode()


def test_csv_export_escapes_a_formula_name_and_keeps_the_phone(admin_client_, make_campaign,
                                                               contacts, outbox):
    contacts(1, first_name="=HYPERLINK(\"http://evil\",\"x\")", last_name="")
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    response = admin_client_.get(reverse("admin:campaigns_campaign_export", args=[campaign.pk]))
    import csv
    import io
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][1].startswith("'=HYPERLINK(")
    assert rows[1][0].startswith("+49") and not rows[1][0].startswith("'")
