"""Who a campaign is for, and who of them may receive a message.

The same rules decide at launch (the snapshot's exclusions, the pre-launch
checks) and right before each send (a contact may opt out or be blocklisted
while the campaign waits or sends).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from campaigns.models import Campaign, ExclusionReason, Send, SendStatus
from crm.models import ConsentStatus, Contact
from crm.selectors import reachable_q
from tagging.audiences.selectors import contacts_matching


def campaign_audience(campaign: Campaign, now: datetime | None = None) -> QuerySet[Contact]:
    """The campaign's audience: its expression, or the parent's non-repliers for a follow-up.

    Raises ``SegmentError`` when the expression is invalid.
    """
    if campaign.parent_id:
        rows = Send.objects.filter(campaign_id=campaign.parent_id,
                                   status__in=[SendStatus.SENT, SendStatus.DELIVERED,
                                               SendStatus.READ], replied_at__isnull=True)
        if campaign.parent.followup_skip_read:
            rows = rows.filter(read_at__isnull=True)
        return Contact.objects.filter(pk__in=rows.values("contact_id"))
    return contacts_matching(campaign.audience, now=now)


def reachable(contacts: QuerySet[Contact], *, marketing: bool) -> QuerySet[Contact]:
    """Contacts who may get a message: not blocklisted, not opted out; for marketing, opted in."""
    return contacts.filter(reachable_q(marketing=marketing))


def unreachable_reason(contact: Contact, *, marketing: bool) -> str:
    """Why ``contact`` may not get a message now, as an ``ExclusionReason``; "" when it may."""
    if contact.is_blocked:
        return ExclusionReason.BLOCKLISTED
    if contact.consent_status == ConsentStatus.OPTED_OUT:
        return ExclusionReason.OPTED_OUT
    if marketing and contact.consent_status != ConsentStatus.OPTED_IN:
        return ExclusionReason.NO_CONSENT
    return ""
