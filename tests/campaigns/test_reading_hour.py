"""Send at each contact's usual reading hour: launch, triggered sends, quiet hours, window."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from campaigns.models import Send, SendStatus
from campaigns.reading import reading_hours, reading_time
from campaigns.selectors import due_sends
from campaigns.sending import campaign_send_batch
from campaigns.services import (
    campaign_launch,
    campaign_send_triggered,
    campaign_triggered_ensure,
)
from crm.models import Contact

BERLIN, LONDON = ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/London")
# Tuesday 8 December 2026, 11:00 in Berlin (CET, UTC+1).
LAUNCH = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


@pytest.fixture
def reads(make_campaign):
    """Give a contact read messages at the given UTC moments (an older campaign's sends)."""
    def add(contact: Contact, *moments: datetime) -> None:
        for moment in moments:  # one send per campaign and contact: a campaign per read
            Send.objects.create(campaign=make_campaign(), contact=contact, phone=contact.phone,
                                status=SendStatus.READ, sent_at=moment - timedelta(minutes=5),
                                created_at=moment, read_at=moment)
    return add


def evening_reader_berlin(make_contact, reads) -> Contact:
    contact = make_contact()
    # 19:10 CEST, 19:10 CET, 19:40 CET and one morning read at 08:30 CET.
    reads(contact, datetime(2026, 10, 20, 17, 10, tzinfo=UTC),
          datetime(2026, 11, 10, 18, 10, tzinfo=UTC), datetime(2026, 11, 20, 18, 40, tzinfo=UTC),
          datetime(2026, 11, 25, 7, 30, tzinfo=UTC))
    return contact


def send_of(campaign, contact) -> Send:
    return Send.objects.get(campaign=campaign, contact=contact)


def test_a_contact_who_reads_at_19_berlin_gets_it_at_the_next_19_berlin(
        make_contact, make_campaign, reads):
    reader = evening_reader_berlin(make_contact, reads)
    newcomer = make_contact()
    campaign = make_campaign(send_at_reading_hour=True)

    snapshot = campaign_launch(campaign=campaign, now=LAUNCH)

    assert send_of(campaign, reader).not_before == datetime(2026, 12, 8, 19, 0, tzinfo=BERLIN)
    assert send_of(campaign, newcomer).not_before is None, "no history: the campaign's time"
    assert (snapshot.recipients, snapshot.by_reading_hour, snapshot.reading_slots) == (2, 1, 1)


def test_each_contact_in_their_own_countrys_time_zone(make_contact, make_campaign, reads):
    londoner = make_contact(phone="+447700900123")
    reads(londoner, datetime(2026, 11, 10, 19, 5, tzinfo=UTC),
          datetime(2026, 11, 12, 19, 50, tzinfo=UTC))
    campaign = make_campaign(send_at_reading_hour=True, time_zone="Europe/Berlin")

    campaign_launch(campaign=campaign, now=LAUNCH)

    assert send_of(campaign, londoner).not_before == datetime(2026, 12, 8, 19, 0, tzinfo=LONDON)


def test_without_the_option_nobody_waits(make_contact, make_campaign, reads):
    reader = evening_reader_berlin(make_contact, reads)
    campaign = make_campaign()
    snapshot = campaign_launch(campaign=campaign, now=LAUNCH)
    assert send_of(campaign, reader).not_before is None and snapshot.by_reading_hour == 0


def test_reads_older_than_90_days_do_not_count(make_contact, make_campaign, reads):
    contact = make_contact()
    reads(contact, LAUNCH - timedelta(days=91, hours=-8))
    campaign = make_campaign(send_at_reading_hour=True)
    campaign_launch(campaign=campaign, now=LAUNCH)
    assert send_of(campaign, contact).not_before is None


def test_a_reading_hour_inside_quiet_hours_goes_at_the_start_time(
        make_contact, make_campaign, reads):
    reader = evening_reader_berlin(make_contact, reads)
    campaign = make_campaign(send_at_reading_hour=True, time_zone="Europe/Berlin",
                             quiet_start=time(18, 0), quiet_end=time(8, 0))
    snapshot = campaign_launch(campaign=campaign, now=LAUNCH)
    assert send_of(campaign, reader).not_before is None
    assert snapshot.by_reading_hour == 0


def test_the_window_caps_the_wait(make_contact, make_campaign, reads, settings):
    settings.CAMPAIGNS_CAP_PER_DAY = 10  # two campaigns launched at the same moment
    reader = evening_reader_berlin(make_contact, reads)
    short = make_campaign(send_at_reading_hour=True, reading_window_hours=7)
    exact = make_campaign(send_at_reading_hour=True, reading_window_hours=8)

    campaign_launch(campaign=short, now=LAUNCH)
    campaign_launch(campaign=exact, now=LAUNCH)

    assert send_of(short, reader).not_before is None, "19:00 is 8 hours after 11:00"
    assert send_of(exact, reader).not_before == datetime(2026, 12, 8, 19, 0, tzinfo=BERLIN)


def test_a_launch_after_the_hour_waits_for_tomorrows(make_contact, make_campaign, reads):
    reader = evening_reader_berlin(make_contact, reads)
    campaign = make_campaign(send_at_reading_hour=True)
    campaign_launch(campaign=campaign, now=datetime(2026, 12, 8, 20, 30, tzinfo=UTC))
    assert send_of(campaign, reader).not_before == datetime(2026, 12, 9, 19, 0, tzinfo=BERLIN)


def test_a_launch_inside_the_hour_sends_at_once(make_contact, make_campaign, reads):
    reader = evening_reader_berlin(make_contact, reads)
    campaign = make_campaign(send_at_reading_hour=True)
    campaign_launch(campaign=campaign, now=datetime(2026, 12, 8, 18, 20, tzinfo=UTC))
    assert send_of(campaign, reader).not_before is None


def test_the_send_loop_sends_nothing_before_not_before(make_contact, make_campaign, reads,
                                                       outbox):
    now = timezone.now()
    later_hour = (now.astimezone(BERLIN).hour + 3) % 24
    reader = make_contact()
    day = (now - timedelta(days=10)).astimezone(BERLIN).date()
    reads(reader, *(datetime.combine(day + timedelta(days=i), time(later_hour, 15),
                                     tzinfo=BERLIN) for i in range(3)))
    newcomer = make_contact()
    campaign = make_campaign(send_at_reading_hour=True)

    campaign_launch(campaign=campaign, now=now)
    campaign_send_batch(campaign_id=campaign.pk, max_seconds=30)

    assert [m["to"] for m in outbox] == [newcomer.phone.lstrip("+")]
    waiting = send_of(campaign, reader)
    assert waiting.status == SendStatus.QUEUED and waiting.not_before > now
    assert due_sends(campaign.pk, waiting.not_before).filter(pk=waiting.pk).exists()


def test_a_triggered_send_waits_for_the_contacts_reading_hour(make_contact, reads, template):
    reader = evening_reader_berlin(make_contact, reads)
    campaign = campaign_triggered_ensure(name="Welcome", template=template)
    campaign.send_at_reading_hour = True
    campaign.save()

    assert campaign_send_triggered(campaign=campaign, contact=reader, now=LAUNCH) == "queued"

    assert send_of(campaign, reader).not_before == datetime(2026, 12, 8, 19, 0, tzinfo=BERLIN)


def test_reading_hours_is_one_query_for_the_audience(make_contact, reads,
                                                     django_assert_num_queries):
    people = [evening_reader_berlin(make_contact, reads) for _ in range(3)]
    with django_assert_num_queries(1):
        found = reading_hours(Contact.objects.values("pk"), countries={"DE"},
                              default_zone=ZoneInfo("UTC"), now=LAUNCH)
    assert found == {c.pk: (19, BERLIN) for c in people}


@hsettings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                          timezones=st.just(UTC)),
       hour=st.integers(0, 23), window=st.integers(1, 168))
def test_reading_time_is_in_the_window_and_at_the_hour(start, hour, window):
    slot = reading_time(hour, BERLIN, start=start, window_hours=window)
    if slot is None:
        return
    assert start < slot <= start + timedelta(hours=window)
    # The hour itself, or the one after when the clocks skip it (last Sunday of March).
    assert slot.astimezone(BERLIN).hour in (hour, (hour + 1) % 24)


def test_the_campaign_page_says_how_the_sends_are_spread(make_contact, make_campaign, reads,
                                                         admin_client):
    now = timezone.now()
    day = (now - timedelta(days=10)).astimezone(BERLIN).date()
    for shift in (2, 3):  # two readers, two different hours ahead of now
        hour = (now.astimezone(BERLIN).hour + shift) % 24
        reads(make_contact(), *(datetime.combine(day + timedelta(days=i), time(hour, 15),
                                                 tzinfo=BERLIN) for i in range(2)))
    make_contact()
    campaign = make_campaign(send_at_reading_hour=True, time_zone="Europe/Berlin")

    page = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    text = page.content.decode()
    assert 'name="send_at_reading_hour"' in text and 'name="reading_window_hours"' in text
    assert ("2 contacts spread over 2 hours by their reading habit; "
            "1 recipient at the start time.") in text
    assert not Send.objects.filter(campaign=campaign).exists(), "the estimate is rolled back"
