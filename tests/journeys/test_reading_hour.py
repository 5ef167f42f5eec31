"""A journey's send step waits for the contact's usual reading hour when the journey says so."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from campaigns.journeys.models import Enrollment, JourneyTrigger
from campaigns.journeys.services import journeys_advance
from campaigns.models import Campaign, Send, SendStatus
from campaigns.services import campaign_create, template_create
from tagging.services import tags_change
from tests.journeys.conftest import SEND

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")


def read_at_hour(contact, hour: int, now: datetime) -> None:
    """Two reads at ``hour``:15 Berlin, 10 and 9 days ago (older campaigns' sends)."""
    other = template_create(name="old", language="de", body="Hallo")
    day = (now - timedelta(days=10)).astimezone(BERLIN).date()
    for i in range(2):
        moment = datetime.combine(day + timedelta(days=i), time(hour, 15), tzinfo=BERLIN)
        campaign = campaign_create(name=f"old {i}", template=other, audience="purchases >= 0")
        Send.objects.create(campaign=campaign, contact=contact, phone=contact.phone,
                            status=SendStatus.READ, sent_at=moment, read_at=moment,
                            created_at=moment)


@pytest.mark.parametrize("option", [True, False])
def test_a_send_step_waits_for_the_reading_hour_when_the_journey_says_so(
        option, make_journey, make_contact, make_tag, template, outbox,
        django_capture_on_commit_callbacks):
    now = timezone.now()
    hour = (now.astimezone(BERLIN).hour + 3) % 24
    neukunde = make_tag(name="Neukunde")
    make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                 trigger_tag=neukunde, send_at_reading_hour=option, reading_window_hours=24)
    contact = make_contact(first_name="Mia")
    read_at_hour(contact, hour, now)
    with django_capture_on_commit_callbacks(execute=True):
        tags_change(contacts=[contact], add=[neukunde])
    assert Enrollment.objects.filter(contact=contact).exists()

    with django_capture_on_commit_callbacks(execute=True):
        journeys_advance()

    send = Send.objects.get(contact=contact, campaign__triggered=True)
    assert Campaign.objects.get(pk=send.campaign_id).send_at_reading_hour is option
    if option:
        assert send.not_before.astimezone(BERLIN).hour == hour and send.not_before > now
        assert send.status == SendStatus.QUEUED and outbox == []
    else:
        assert send.not_before is None
        assert [m["to"] for m in outbox] == [contact.phone.lstrip("+")]
