"""Pre-launch checks, personalisation, and the recipient snapshot with exclusions."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from campaigns.content import render_preview
from campaigns.models import (
    CampaignStatus,
    Exclusion,
    Send,
    SendStatus,
    SensitiveWord,
    TemplateCategory,
)
from campaigns.sending import campaign_send_batch
from campaigns.services import (
    LaunchBlocked,
    campaign_checks,
    campaign_launch,
    template_create,
)
from crm.models import ConsentStatus


def codes(checks, level=None):
    return {c.code for c in checks if level is None or c.level == level}


def test_salutation_and_surname_with_neutral_fallback(template, make_contact):
    assert render_preview(template, make_contact(salutation="Frau", last_name="Chen")) \
        .startswith("Hallo Frau Chen,")
    assert render_preview(template, make_contact(salutation="", gender="m", last_name="Bauer")) \
        .startswith("Hallo Herr Bauer,")
    assert render_preview(template, make_contact(salutation="", last_name="")) \
        .startswith("Hallo Kundin/Kunde,")


def test_checks_block_what_whatsapp_would_refuse(db, make_campaign, contacts):
    contacts(1)
    SensitiveWord.objects.create(word="gratis")
    bad = template_create(name="bad", language="de", body="Gratis für {{1}} und {{2}}! " * 60,
                          variables=["first_name"], footer="x" * 61)
    checks = campaign_checks(campaign=make_campaign(template=bad))
    assert {"body_too_long", "footer_too_long", "unmapped_variables", "sensitive_word"} <= \
        codes(checks, "block")
    assert "no_opt_out" in codes(checks, "warn")


def test_links_warn_with_the_spam_note_and_do_not_block(db, make_campaign, contacts):
    contacts(1)
    linked = template_create(name="linked", language="de",
                             body="Neu: https://shop.example.com/sale – STOP zum Abmelden")
    checks = campaign_checks(campaign=make_campaign(template=linked))
    link = next(c for c in checks if c.code == "links")
    assert link.level == "warn" and "70%" in link.message
    assert not codes(checks, "block")


def test_an_audience_without_consent_blocks_the_launch(make_campaign, contacts):
    contacts(3, consent_status=ConsentStatus.UNKNOWN)
    campaign = make_campaign()
    with pytest.raises(LaunchBlocked) as caught:
        campaign_launch(campaign=campaign)
    assert "no_consented_contacts" in codes(caught.value.checks)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_header_image_limits(db, template, make_campaign, contacts):
    from PIL import Image

    contacts(1)
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), "red").save(buffer, "JPEG")
    template.header_image.save("h.jpg", ContentFile(buffer.getvalue()), save=True)
    assert "image_size" in codes(campaign_checks(campaign=make_campaign()), "warn")
    template.header_image.save("big.jpg", ContentFile(b"\xff" * (5 * 1024 * 1024 + 1)))
    assert {"image_too_large", "image_unreadable"} <= codes(
        campaign_checks(campaign=make_campaign()), "block")


def test_snapshot_counts_and_lists_every_exclusion_by_reason(make_campaign, contacts,
                                                            make_contact):
    ok = contacts(3)
    make_contact(consent_status=ConsentStatus.UNKNOWN)
    make_contact(consent_status=ConsentStatus.OPTED_OUT)
    make_contact(is_blocked=True)
    make_contact(phone="12345")  # stored by an old import, not a real number
    make_contact(city="Berlin")
    campaign = make_campaign(suppression='city = "Berlin"')

    snapshot = campaign_launch(campaign=campaign)

    assert snapshot.recipients == 3
    assert snapshot.excluded == {"no_consent": 1, "opted_out": 1, "blocklisted": 1,
                                 "invalid_number": 1, "suppressed": 1}
    assert set(Send.objects.filter(campaign=campaign).values_list("contact_id", flat=True)) \
        == {c.pk for c in ok}
    assert Exclusion.objects.filter(campaign=campaign).count() == 5


def test_later_tag_changes_do_not_move_the_audience(make_campaign, contacts, make_contact,
                                                    outbox):
    contacts(2)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    make_contact()  # joins the segment after launch
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)
    assert len(outbox) == 2


def test_frequency_cap_across_campaigns(settings, make_campaign, contacts, outbox):
    people = contacts(2)
    first = make_campaign()
    campaign_launch(campaign=first)
    campaign_send_batch(campaign_id=first.pk, max_seconds=30)

    second = campaign_launch(campaign=make_campaign())
    assert second.recipients == 0 and second.excluded == {"frequency_cap": 2}

    # After 24 h the daily cap is free again, the weekly one (3) not yet reached.
    Send.objects.update(sent_at=timezone.now() - timedelta(hours=25))
    assert campaign_launch(campaign=make_campaign()).recipients == 2
    Send.objects.update(sent_at=timezone.now() - timedelta(hours=25))
    assert campaign_launch(campaign=make_campaign()).recipients == 2
    Send.objects.update(sent_at=timezone.now() - timedelta(hours=25))
    fourth = campaign_launch(campaign=make_campaign())
    assert fourth.excluded == {"frequency_cap": 2}, "3 marketing messages in 7 days is the cap"

    settings.CAMPAIGNS_CAP_PER_WEEK = 10
    assert campaign_launch(campaign=make_campaign()).recipients == len(people)


def test_utility_templates_ignore_the_marketing_cap_and_consent(db, make_campaign, contacts,
                                                                make_contact):
    contacts(1)
    make_contact(consent_status=ConsentStatus.UNKNOWN)
    utility = template_create(name="order_update", language="de", body="Ihre Bestellung ist da",
                              category=TemplateCategory.UTILITY)
    assert campaign_launch(campaign=make_campaign(template=utility)).recipients == 2
    assert campaign_launch(campaign=make_campaign(template=utility)).recipients == 2


def test_scheduled_campaign_waits_for_its_time(make_campaign, contacts):
    from campaigns.tick import campaigns_tick

    contacts(1)
    later = timezone.now() + timedelta(hours=2)
    campaign = make_campaign(scheduled_at=later)
    assert campaign_launch(campaign=campaign) is None
    assert campaign.status == CampaignStatus.SCHEDULED
    assert not Send.objects.filter(campaign=campaign).exists()

    campaigns_tick(now=later + timedelta(seconds=1))
    campaign.refresh_from_db()
    assert campaign.status in (CampaignStatus.SENDING, CampaignStatus.COMPLETED)
    assert Send.objects.filter(campaign=campaign, status=SendStatus.QUEUED).count() == 1
