"""Offers in ``/api/v1/`` (scope ``offers:read``), composed in ``config.api``.

* ``GET /offers/{slug}/eligibility/?phone=…``: may the contact with this number (in
  any writing) use the offer now? ``{"eligible", "reason"}`` — what a shop asks before
  letting a customer buy a tag-restricted product or join an activity. An unknown
  number is an answer (not eligible), not an error.
* ``GET /contacts/{phone}/offers/``: the offers the contact may use now.
"""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Router, Schema
from pydantic import Field

from crm.api.framework import TokenAuth, contact_by_phone, not_found, phone_from_path, responses
from crm.models import ApiScope, Contact
from tagging.offers.models import Offer
from tagging.offers.selectors import offer_eligibility, offers_for_contact

router = Router(tags=["offers"])


class EligibilityOut(Schema):
    eligible: bool
    reason: str = Field(description="Why, in a sentence: not in the audience, expired, not "
                                    "valid yet, unknown contact, or eligible.")
    code: str = Field(description="The reason as a stable word: eligible, not_in_audience, "
                                  "expired, not_yet_valid, unknown_contact.")


class OfferOut(Schema):
    slug: str
    name: str
    description: str
    code: str
    link: str
    valid_from: datetime | None
    valid_until: datetime | None


class OfferList(Schema):
    items: list[OfferOut]


@router.get("/offers/{slug}/eligibility/", auth=TokenAuth(ApiScope.OFFERS_READ),
            response=responses({200: EligibilityOut}, 404, 422),
            summary="May this contact use the offer?")
def offer_eligibility_get(request: HttpRequest, slug: str, phone: str):
    offer = Offer.objects.filter(slug=slug).first()
    if offer is None:
        raise not_found(_("No offer has the slug “%(slug)s”.") % {"slug": slug}, "slug")
    contact = Contact.objects.filter(phone=phone_from_path(phone)).first()
    answer = offer_eligibility(offer, contact)
    return {"eligible": answer.eligible, "reason": answer.reason, "code": answer.code}


@router.get("/contacts/{phone}/offers/", auth=TokenAuth(ApiScope.OFFERS_READ),
            response=responses({200: OfferList}, 404, 422),
            summary="The offers a contact may use now")
def contact_offers_get(request: HttpRequest, phone: str):
    contact = contact_by_phone(phone)
    return {"items": offers_for_contact(contact)}
