"""Named placeholders ({{first_name}}) go out as named parameters (reference §1.3)."""

from __future__ import annotations

from campaigns.content import message_for, render_preview, template_checks
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_launch, template_create


def named_template(**fields):
    return template_create(**{
        "name": "named_offer", "language": "de",
        "body": "Hallo {{first_name}}, dein Code {{code}} gilt in {{city}}. {{first_name}}, bis "
                "bald! Antworte STOP zum Abmelden.",
        "variables": ["first_name", "text:FRUEHLING20", "city"], **fields})


def test_named_placeholders_are_sent_with_their_names_against_the_cloud_api(
        fake_api, make_contact, make_campaign):
    make_contact(first_name="Mei", city="Hamburg")
    campaign = make_campaign(template=named_template())

    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)

    (request,) = fake_api.accepted()
    assert request["body"]["template"]["components"] == [{"type": "body", "parameters": [
        {"type": "text", "text": "Mei", "parameter_name": "first_name"},
        {"type": "text", "text": "FRUEHLING20", "parameter_name": "code"},
        {"type": "text", "text": "Hamburg", "parameter_name": "city"},
    ]}]


def test_positional_placeholders_carry_no_parameter_name(template, make_contact):
    message = message_for(template, make_contact(salutation="Frau", last_name="Chen"))
    assert message.components == [{"type": "body", "parameters": [
        {"type": "text", "text": "Frau Chen"}]}]


def test_preview_fills_named_placeholders_everywhere_they_appear(db, make_contact):
    text = render_preview(named_template(), make_contact(first_name="Mei", city=""))
    assert text.startswith("Hallo Mei, dein Code FRUEHLING20 gilt in –. Mei, bis bald!")


def test_mixed_or_invalid_placeholder_names_block_launch(db):
    mixed = template_create(name="mixed", language="de", body="Hallo {{1}} aus {{city}}",
                            variables=["first_name", "city"])
    assert "placeholders_mixed" in {c.code for c in template_checks(mixed)}
    upper = template_create(name="upper", language="de", body="Hallo {{FirstName}}",
                            variables=["first_name"])
    assert "placeholder_name" in {c.code for c in template_checks(upper)}
    assert not {"placeholders_mixed", "placeholder_name"} & {
        c.code for c in template_checks(named_template())}
