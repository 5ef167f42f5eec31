"""Per-item hot paths stay set-based: lookups that do not grow with the batch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Campaign, Exclusion, ExclusionReason, InboundMessage, KeywordRule
from campaigns.policy import sending_policy
from campaigns.services import campaign_send_triggered, campaign_triggered_ensure, template_create
from campaigns.webhook_input import MessageIn
from campaigns.webhooks import messages_apply
from crm.models import ConsentStatus, Contact
from tagging.models import TagAssignment
from tagging.services import tags_change
from tests.factories import ContactFactory, TagFactory

pytestmark = pytest.mark.django_db

LOOKUPS = ("campaigns_optoutkeyword", "campaigns_deletionkeyword", "campaigns_keywordrule")


def _inbound(contacts: list[Contact], texts: list[str], start: int = 0) -> list[MessageIn]:
    now = timezone.now()
    return [
        MessageIn(
            message_id=f"wamid.in-{start + i}",
            wa_id=c.phone.lstrip("+"),
            occurred_at=now - timedelta(seconds=i),
            kind="text",
            text=text,
            context_id="",
            payload={},
        )
        for i, (c, text) in enumerate(zip(contacts, texts, strict=True))
    ]


def _lookups(messages: list[MessageIn]) -> int:
    """Queries reading the keywords or the senders' contacts while ``messages`` are applied."""
    with CaptureQueriesContext(connection) as captured:
        assert messages_apply(messages=messages) == len(messages)
    sql = [q["sql"] for q in captured.captured_queries]
    keyword_reads = sum(any(table in s for table in LOOKUPS) for s in sql)
    contact_reads = sum(s.startswith("SELECT") and 'FROM "crm_contact"' in s for s in sql)
    return keyword_reads + contact_reads


def test_inbound_messages_read_keywords_and_contacts_once_per_batch():
    sport = TagFactory(name="Sport")
    KeywordRule.objects.create(name="Sport", keywords="fußball, tennis", tag=sport)
    few, many = [ContactFactory() for _ in range(2)], [ContactFactory() for _ in range(8)]
    assert _lookups(_inbound(few, ["Hallo"] * 2)) == _lookups(
        _inbound(many, ["Hallo"] * 8, start=100)
    )
    assert InboundMessage.objects.count() == 10

    # Read once, still acted on per message (twice from one contact in one batch, too).
    fan, quitter, chatter = many[:3]
    messages_apply(
        messages=_inbound(
            [fan, quitter, chatter, fan], ["Ich spiele Tennis", "STOP", "Hallo", "stop"], start=200
        )
    )
    assert TagAssignment.objects.filter(tag=sport).get().contact_id == fan.pk
    opted_out = set(
        Contact.objects.filter(consent_status=ConsentStatus.OPTED_OUT).values_list("pk", flat=True)
    )
    assert opted_out == {quitter.pk, fan.pk}


# --- A triggered send decides a contact in one query, however many rules apply ---------------


def _decide(campaign, contact) -> tuple[str, int]:
    """The answer and the number of queries, leaving out the suppression expression's
    vocabulary lookup (tag names → ids, as at a launch)."""
    sending_policy()  # cached for minutes in production; warm here
    with CaptureQueriesContext(connection) as captured:
        answer = campaign_send_triggered(campaign=campaign, contact=contact)
    vocabulary = ('FROM "tagging_tag" ', 'FROM "tagging_dimension" ')
    return answer, sum(
        not any(v in q["sql"] for v in vocabulary) for q in captured.captured_queries
    )


def test_a_triggered_send_classifies_the_contact_in_one_query():
    plain = campaign_triggered_ensure(
        name="Service",
        template=template_create(name="info", language="de", body="Info", category="utility"),
    )
    checked = campaign_triggered_ensure(
        name="Angebot", template=template_create(name="angebot", language="de", body="Hallo!")
    )  # marketing: consent and caps
    Campaign.objects.filter(pk=checked.pk).update(suppression='"Sperre"')
    checked.refresh_from_db()
    blocked = TagFactory(name="Sperre")
    suppressed = ContactFactory(consent_status=ConsentStatus.OPTED_IN)
    tags_change(contacts=[suppressed], add=[blocked])

    queued_plain, plain_queries = _decide(plain, ContactFactory())
    consented = ContactFactory(consent_status=ConsentStatus.OPTED_IN)
    queued, checked_queries = _decide(checked, consented)
    assert (queued_plain, queued) == ("queued", "queued")
    assert plain_queries <= 3  # the campaign, the classification, the send
    assert checked_queries == plain_queries  # suppression, consent, caps: one query still
    assert _decide(checked, suppressed) == (ExclusionReason.SUPPRESSED, plain_queries)
    assert _decide(checked, suppressed)[0] == ""  # decided before: nothing again
    assert Exclusion.objects.filter(campaign=checked, contact=suppressed).count() == 1
