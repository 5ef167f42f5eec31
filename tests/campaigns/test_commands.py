"""The management commands, as a script would use them, and the sandbox end to end."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, SandboxEvent, Send, Template
from campaigns.tick import campaigns_tick
from crm.models import ConsentStatus


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_create_launch_and_report(db, contacts, make_contact, outbox):
    contacts(3, salutation="Frau", last_name="Chen")
    make_contact(consent_status=ConsentStatus.OPTED_OUT)
    run("create_template", "--name", "spring_offer", "--language", "de", "--body",
        "Hallo {{1}}! Antworte STOP zum Abmelden.", "--variables", "salutation_last_name",
        "--footer", "Tagwerk GmbH")
    assert Template.objects.get(name="spring_offer").status == "approved"
    run("create_campaign", "--name", "Frühling", "--template", "spring_offer", "--where",
        "purchases >= 0", "--rate", "500")

    out = run("launch_campaign", "Frühling", "--wait", "--timeout", "20")
    assert "3 recipients" in out and "opted_out 1" in out and "completed" in out.lower()
    assert len(outbox) == 3

    report = json.loads(run("campaign_report", "Frühling", "--json"))
    assert report["recipients"] == 3 and report["sent"] == 3
    assert report["excluded"] == {"opted_out": 1}
    assert report["failed"] == {} and report["delivered"] == 0 and report["replied"] == 0
    assert "read" in report


def test_errors_are_command_errors(db, template):
    with pytest.raises(CommandError, match="not found"):
        call_command("create_campaign", "--name", "x", "--template", "nope", "--where", "VIP")
    with pytest.raises(CommandError, match="invalid"):
        call_command("create_campaign", "--name", "x", "--template", "spring_offer",
                     "--where", "purchases >")
    with pytest.raises(CommandError, match="No campaign"):
        call_command("launch_campaign", "missing")
    with pytest.raises(CommandError, match="cannot be sent"):
        call_command("create_template", "--name", "t", "--language", "de", "--body",
                     "Hallo {{1}}", stdout=StringIO(), stderr=StringIO())


def test_launch_blocked_by_checks_says_why(db, template, contacts):
    contacts(1, consent_status=ConsentStatus.UNKNOWN)
    run("create_campaign", "--name", "Leer", "--template", "spring_offer", "--where",
        "purchases >= 0")
    with pytest.raises(CommandError, match="agreed to receive"):
        call_command("launch_campaign", "Leer", stdout=StringIO(), stderr=StringIO())


def test_sandbox_posts_signed_webhooks_and_the_report_fills(
        settings, db, contacts, make_campaign, django_capture_on_commit_callbacks):
    settings.WHATSAPP_BACKEND = "campaigns.backends.sandbox.SandboxBackend"
    contacts(40)
    campaign = make_campaign()
    with django_capture_on_commit_callbacks(execute=True):
        from campaigns.services import campaign_launch

        campaign_launch(campaign=campaign)
    assert Send.objects.filter(campaign=campaign, wamid__startswith="wamid.sandbox").count() == 40
    assert SandboxEvent.objects.count() >= 80

    with django_capture_on_commit_callbacks(execute=True):
        campaigns_tick(now=timezone.now() + timedelta(minutes=1))

    report = json.loads(run("campaign_report", campaign.name, "--json"))
    assert report["delivered"] + sum(report["failed"].values()) == 40
    assert report["read"] > 0
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.COMPLETED
    assert Campaign.objects.count() == 1
