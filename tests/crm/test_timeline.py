"""The contact's timeline pages: every entry exactly once, even many in one instant."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import InboundMessage
from crm.events import EventIn, events_record
from crm.timeline import Cursor, timeline_page
from tagging.models import AssignmentHistory, Source
from tagging.services import tags_change
from tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db


def _sixty_entries_in_one_instant():
    """20 events, 20 tag changes and 20 replies, all at the same moment (an import's burst)."""
    contact = ContactFactory()
    instant = timezone.now().replace(microsecond=123456)
    events_record(
        events=[
            EventIn(kind="purchase", contact_id=contact.pk, product=f"P{i:02}", occurred_at=instant)
            for i in range(20)
        ]
    )
    tags_change(
        contacts=[contact],
        add=[TagFactory(name=f"T{i:02}") for i in range(20)],
        source=Source.IMPORT,
    )
    AssignmentHistory.objects.filter(contact=contact).update(at=instant)
    InboundMessage.objects.bulk_create(
        InboundMessage(
            message_id=f"wamid.{i}",
            contact=contact,
            kind="text",
            text=f"R{i:02}",
            occurred_at=instant,
        )
        for i in range(20)
    )
    return contact


def _titles(html: str) -> list[str]:
    return re.findall(r'class="tw-timeline-title">([^<]+)<', html)


def test_sixty_entries_of_one_instant_page_by_25_each_exactly_once(client, superuser):
    contact = _sixty_entries_in_one_instant()
    client.force_login(superuser)
    url = reverse("admin:crm_contact_timeline", args=[contact.pk])
    pages = []
    while url:
        html = client.get(url).content.decode()
        pages.append(_titles(html))
        more = re.search(r'href="([^"]+)" data-tw-more', html)
        url = more.group(1).replace("&amp;", "&") if more else ""
    seen = [title for page in pages for title in page]
    assert [len(page) for page in pages] == [25, 25, 10]
    assert len(seen) == len(set(seen)) == 60
    for name in ("P", "T", "R"):  # every purchase, tag change and reply, once
        assert len([t for t in seen if re.search(rf"\b{name}\d\d\b", t)]) == 20


def test_the_cursor_pages_through_the_sources_without_gaps(superuser):
    contact = _sixty_entries_in_one_instant()
    first = timeline_page(contact, limit=25)
    second = timeline_page(contact, before=first.next_before, limit=25)
    third = timeline_page(contact, before=second.next_before, limit=25)
    keys = [(e.kind, e.id) for page in (first, second, third) for e in page.entries]
    assert len(keys) == len(set(keys)) == 60
    assert third.next_before is None


@pytest.mark.parametrize(
    "before",
    [
        "nonsense",
        "2024-13-45T99:00:00",
        "2024-01-01T10:00~tag~x",
        "~~",
        "2024-01-01T10:00:00+00:00~tag",
        "0001-01-01T00:00:00+05:00",  # a real datetime with no UTC equivalent
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_a_malformed_cursor_gives_a_page_not_an_error(client, superuser, before):
    contact = _sixty_entries_in_one_instant()
    client.force_login(superuser)
    url = reverse("admin:crm_contact_timeline", args=[contact.pk])
    response = client.get(url, {"before": before})
    assert response.status_code == 200


def test_an_older_link_with_a_bare_datetime_still_pages():
    at = timezone.now()
    assert Cursor.parse(at.isoformat()) == Cursor(at, "", 0)
    assert Cursor.parse(Cursor(at, "tag", 7).encode()) == Cursor(at, "tag", 7)
