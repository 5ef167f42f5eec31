"""Writes for offers: creating and changing them (the only writer of ``offers_offer``)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.text import slugify
from django.utils.translation import gettext as _

from tagging.audiences.language import SegmentError, parse
from tagging.offers.models import Offer


class OfferError(ValueError):
    """The offer cannot be saved as asked; the message says why and what to do."""


def moment_parse(text: str, *, end: bool = False) -> datetime | None:
    """``2026-12-24`` or ``2026-12-24T18:00`` as an aware moment in ``TIME_ZONE``.

    A date alone means its whole day: as a start its midnight, as an end (``end``)
    the following midnight, so ``--until 2026-12-24`` includes Christmas Eve.
    """
    text = (text or "").strip()
    if not text:
        return None
    try:
        day = parse_date(text) if len(text) == 10 else None
        moment = None if day else parse_datetime(text)
    except ValueError:
        day = moment = None
    if day is not None:
        moment = datetime.combine(day + timedelta(days=1) if end else day, time())
    if moment is None:
        raise OfferError(_("“%(text)s” is not a date: write 2026-12-24 or "
                           "2026-12-24T18:00.") % {"text": text})
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def offer_check(*, audience: str, valid_from: datetime | None,
                valid_until: datetime | None) -> None:
    """Raise ``OfferError`` for an invalid audience or a period that ends before it starts."""
    if not audience.strip():
        raise OfferError(_("Say who may use the offer: give an audience expression, e.g. "
                           "“\"VIP\"”."))
    try:
        parse(audience)
    except SegmentError as exc:
        raise OfferError(_("The audience expression is invalid: %(error)s")
                         % {"error": exc}) from None
    if valid_from and valid_until and valid_until <= valid_from:
        raise OfferError(_("The offer ends before it starts: “valid until” must lie after "
                           "“valid from”."))


def offer_create(*, name: str, audience: str, slug: str = "",
                 valid_from: datetime | None = None, valid_until: datetime | None = None,
                 code: str = "", link: str = "", description: str = "") -> Offer:
    """Create an offer; ``OfferError`` for a name or slug in use or an invalid field."""
    name = " ".join(name.split())
    slug = slugify(slug or name)
    if not name or not slug:
        raise OfferError(_("Give the offer a name (and a slug of letters, digits and "
                           "hyphens)."))
    offer_check(audience=audience, valid_from=valid_from, valid_until=valid_until)
    if Offer.objects.filter(slug=slug).exists():
        raise OfferError(_("The slug “%(slug)s” is used by another offer; choose another.")
                         % {"slug": slug})
    if Offer.objects.filter(name=name).exists():
        raise OfferError(_("An offer named “%(name)s” exists already; choose another name.")
                         % {"name": name})
    try:
        with transaction.atomic():
            return Offer.objects.create(
                name=name, slug=slug, audience=audience.strip(), valid_from=valid_from,
                valid_until=valid_until, code=code.strip(), link=link.strip(),
                description=description)
    except IntegrityError:  # a concurrent create took the name or slug
        raise OfferError(_("An offer with this name or slug exists already.")) from None
