"""The dashboard's campaign panel shows each recent campaign's rates against the thresholds."""

import pytest
from django.utils import timezone

from campaigns.insight import recent_campaigns_panel
from campaigns.models import Send, SendStatus
from campaigns.sending import campaign_send_batch
from campaigns.services import campaign_launch
from tagging.insight.usage import panels

pytestmark = pytest.mark.django_db


def test_panel_is_registered_for_the_dashboard():
    assert "campaigns" in [panel.key for panel in panels()]


def test_panel_lists_a_launched_campaign_with_its_rates(contacts, make_campaign):
    contacts(4)
    campaign = make_campaign()
    campaign_launch(campaign=campaign)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=5)
    sends = Send.objects.filter(campaign=campaign)
    assert sends.count() == 4
    # Three delivered and read, one only sent: delivery 75 %, read 100 % of delivered.
    sends.filter(pk__in=list(sends.values_list("pk", flat=True)[:3])).update(
        status=SendStatus.READ)

    panel = recent_campaigns_panel(now=timezone.now())

    [row] = panel["rows"]
    name, sent, delivered, read, _replied = row
    assert name["text"] == campaign.name and sent == 4
    assert (delivered["text"], delivered["band"]) == ("75%", "bad")
    assert (read["text"], read["band"]) == ("100%", "good")


def test_panel_says_when_nothing_was_launched(db):
    panel = recent_campaigns_panel(now=timezone.now())
    assert panel["rows"] == [] and "No campaign" in panel["empty"]
