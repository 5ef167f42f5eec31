from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from crm.models import Event, EventKind
from tagging.audiences.language import SegmentError
from tagging.audiences.selectors import contacts_matching

pytestmark = pytest.mark.django_db


def ids(expression, now=None):
    return set(contacts_matching(expression, now=now).values_list("pk", flat=True))


def reads(contact, count, now):
    Event.objects.bulk_create([
        Event(contact=contact, kind=EventKind.MESSAGE_READ, occurred_at=now - timedelta(days=i),
              batch="00000000-0000-0000-0000-000000000000") for i in range(count)])


def test_reads_per_week_counts_the_last_four_weeks(make_contact):
    now = timezone.now()
    none, three, four, eight = (make_contact() for _ in range(4))
    reads(three, 3, now)
    reads(four, 4, now)
    reads(eight, 8, now)
    old = make_contact()
    Event.objects.create(contact=old, kind=EventKind.MESSAGE_READ,
                         batch="00000000-0000-0000-0000-000000000000",
                         occurred_at=now - timedelta(days=40))
    assert ids("reads_per_week >= 1", now) == {four.pk, eight.pk}
    assert ids("reads_per_week < 1", now) == {none.pk, three.pk, old.pk}
    assert ids("reads_per_week = 0", now) == {none.pk, old.pk}
    assert ids("reads_per_week > 1", now) == {eight.pk}
    assert ids("reads_per_week != 1", now) == {none.pk, three.pk, old.pk, eight.pk}


def test_birthday_in_counts_days_to_the_next_birthday(make_contact):
    now = timezone.make_aware(datetime(2025, 12, 28, 12))  # across the new year
    today = make_contact(birth_date=datetime(1990, 12, 28).date())
    in4 = make_contact(birth_date=datetime(1985, 1, 1).date())
    in8 = make_contact(birth_date=datetime(1985, 1, 5).date())
    yesterday = make_contact(birth_date=datetime(1985, 12, 27).date())
    make_contact(birth_date=None)
    assert ids("birthday_in <= 7", now) == {today.pk, in4.pk}
    assert ids("birthday_in = 0", now) == {today.pk}
    assert ids("birthday_in > 7", now) == {in8.pk, yesterday.pk}


def test_a_leap_day_birthday_is_celebrated_on_28_february(make_contact):
    leap = make_contact(birth_date=datetime(1992, 2, 29).date())
    now = timezone.make_aware(datetime(2025, 2, 25, 12))
    assert ids("birthday_in <= 3", now) == {leap.pk}
    assert ids("birthday_in <= 2", now) == set()


def test_computed_fields_refuse_within_and_text():
    with pytest.raises(SegmentError, match="within"):
        ids("birthday_in within 7d")
    with pytest.raises(SegmentError, match="number"):
        ids('reads_per_week >= "a"')
