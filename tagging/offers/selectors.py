"""Reads for offers: whether one contact may use an offer, and which offers it may use.

Membership is answered by the audience index (``contact_matches``: a bitmap lookup
on PostgreSQL) so a shop's check before checkout stays fast at a million contacts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from crm.models import Contact
from tagging.audiences.language import SegmentError, tags_used_by
from tagging.audiences.selectors import (
    bitmap_matching,
    contact_matches,
    contacts_matching,
    count_matching,
    counts_matching,
)
from tagging.offers.models import Offer

VALID, NOT_YET, EXPIRED = "valid", "not_yet_valid", "expired"


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    code: str  # eligible, unknown_contact, not_yet_valid, expired, not_in_audience
    reason: str  # the sentence a person reads


def offer_period_state(offer: Offer, now: datetime | None = None) -> str:
    """``valid``, ``not_yet_valid`` or ``expired``: from inclusive, until exclusive."""
    now = now or timezone.now()
    if offer.valid_from and now < offer.valid_from:
        return NOT_YET
    if offer.valid_until and now >= offer.valid_until:
        return EXPIRED
    return VALID


def _when(moment: datetime) -> str:
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def offer_eligibility(offer: Offer, contact: Contact | None,
                      now: datetime | None = None) -> Eligibility:
    """May ``contact`` use ``offer`` now? The first reason that says no, in a sentence."""
    now = now or timezone.now()
    if contact is None:
        return Eligibility(False, "unknown_contact", _(
            "No contact has this number, so nobody with it may use the offer."))
    refused = _period_refusal(offer, now)
    if refused is not None:
        return refused
    try:
        member = contact_matches(offer.audience, contact.pk, now)
    except SegmentError:
        member = False
    return _eligible() if member else _not_in_audience()


def offer_eligibility_many(offer: Offer, contact_ids: Iterable[int],
                           now: datetime | None = None) -> dict[int, Eligibility]:
    """``offer_eligibility`` for many contacts at once: contact id → its answer.

    The period is checked once and the audience evaluated once for all of them (the
    index's bitmap where it holds the expression, else one query). An id that names no
    contact is not in the audience.
    """
    now = now or timezone.now()
    ids = set(contact_ids)
    refused = _period_refusal(offer, now)
    if refused is not None:
        return dict.fromkeys(ids, refused)
    try:
        found = bitmap_matching(offer.audience, now)
        members = ({pk for pk in ids if pk in found} if found is not None else set(
            contacts_matching(offer.audience, Contact.objects.filter(pk__in=ids), now)
            .values_list("pk", flat=True)))
    except SegmentError:
        members = set()
    yes, no = _eligible(), _not_in_audience()
    return {pk: yes if pk in members else no for pk in ids}


def _period_refusal(offer: Offer, now: datetime) -> Eligibility | None:
    state = offer_period_state(offer, now)
    if state == NOT_YET:
        return Eligibility(False, NOT_YET, _("The offer is not valid yet: it starts on "
                                             "%(when)s.") % {"when": _when(offer.valid_from)})
    if state == EXPIRED:
        return Eligibility(False, EXPIRED, _("The offer has expired: it ended on %(when)s.")
                           % {"when": _when(offer.valid_until)})
    return None


def _eligible() -> Eligibility:
    return Eligibility(True, "eligible", _("The contact is in the offer's audience and the "
                                           "offer is valid."))


def _not_in_audience() -> Eligibility:
    return Eligibility(False, "not_in_audience", _(
        "The contact is not in the offer's audience."))


def offers_valid(now: datetime | None = None) -> QuerySet[Offer]:
    now = now or timezone.now()
    return Offer.objects.filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now),
                                Q(valid_until__isnull=True) | Q(valid_until__gt=now))


def offers_for_contact(contact: Contact, now: datetime | None = None) -> list[Offer]:
    """The offers ``contact`` may use now, by name."""
    now = now or timezone.now()
    return [offer for offer in offers_valid(now).order_by("name")
            if offer_eligibility(offer, contact, now).eligible]


def offer_eligible_count(offer: Offer, now: datetime | None = None) -> int | None:
    """How many contacts are in the audience (the period aside); None when it is invalid."""
    try:
        return count_matching(offer.audience, now)
    except SegmentError:
        return None


def offers_eligible_counts(offers: Iterable[Offer], now: datetime | None = None
                           ) -> dict[int, int | None]:
    """``offer_eligible_count`` of each offer, for a list: each audience parsed once with
    one vocabulary load, and counted in one query (``counts_matching``)."""
    offers = list(offers)
    counts = counts_matching((offer.audience for offer in offers), now)
    return {offer.pk: counts[offer.audience] for offer in offers}


def offer_tags_last_used(*, since: datetime) -> dict[int, datetime]:
    """Insight usage: tags named in the audience of an offer valid since ``since``.

    An offer valid now uses them now; one that ended since ``since`` used them
    until its end. Two queries: the offers and the vocabulary.
    """
    now = timezone.now()
    rows = Offer.objects.filter(
        Q(valid_from__isnull=True) | Q(valid_from__lte=now),
        Q(valid_until__isnull=True) | Q(valid_until__gte=since),
    ).values_list("audience", "valid_until")
    return tags_used_by((text, min(until or now, now)) for text, until in rows)
