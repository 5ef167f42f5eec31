"""Writes for entry points: creating them, their link and QR code, and applying an arrival.

An arrival is one inbound message that names an entry point's code (or carries an
ad's referral). ``arrival_apply`` records it once per message and entry point,
tags the contact (``tagging.services.tags_change``), records consent through the
consent rule when the entry point says writing counts as opting in
(``crm.services``), and queues the welcome once per contact through a triggered
campaign (``campaigns.services.campaign_send_triggered``).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import segno
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from campaigns.entrypoints.models import CODE_PATTERN, Arrival, EntryPoint, EntryPointKind
from campaigns.services import campaign_send_triggered, campaign_triggered_ensure
from crm.models import ConsentStatus, Contact
from crm.services import consent_change_allowed, contact_set_consent
from tagging.models import Dimension, Source, Tag
from tagging.names import name_key
from tagging.services import tags_change
from tagging.vocabulary import VocabularyError, tag_create

logger = logging.getLogger(__name__)

# No 0/O or 1/I: a code read off a poster and typed by hand must not be ambiguous.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFERRAL_FIELDS = ("source_type", "source_id", "source_url", "headline", "body", "media_type",
                   "ctwa_clid")


class EntryPointError(ValueError):
    """The entry point cannot be created as asked; the message says why and what to do."""


# --- Creating ---------------------------------------------------------------------------

def code_normalize(code: str) -> str:
    return (code or "").strip().upper()


def code_generate(length: int = 6) -> str:
    """A fresh code nobody uses yet, e.g. ``K7QX2M``."""
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _i in range(length))
        if not EntryPoint.objects.filter(code=code).exists():
            return code


def entry_point_create(*, name: str, tags: list[Tag] = (), code: str = "", text: str = "",
                       consent: bool = False, consent_text: str = "",
                       welcome_template=None, kind: str = EntryPointKind.CODE,
                       headline_dimension: Dimension | None = None) -> EntryPoint:
    """Create an entry point; raise ``EntryPointError`` for a name or code in use or a bad code."""
    code = code_normalize(code) or code_generate()
    if not re.fullmatch(CODE_PATTERN, code):
        raise EntryPointError(_("The code “%(code)s” is not usable: use 4–20 capital letters, "
                                "digits and inner hyphens, e.g. MESSE26.") % {"code": code})
    if EntryPoint.objects.filter(name=name).exists():
        raise EntryPointError(_("An entry point named “%(name)s” exists already; choose "
                                "another name.") % {"name": name})
    if EntryPoint.objects.filter(code=code).exists():
        raise EntryPointError(_("The code “%(code)s” is used by another entry point; choose "
                                "another or leave it empty for a new one.") % {"code": code})
    if consent and not consent_text.strip():
        raise EntryPointError(_("Writing can only count as opting in when the customer sees "
                                "a consent text: give the text."))
    with transaction.atomic():
        entry_point = EntryPoint.objects.create(
            name=name, code=code, text=text, consent=consent, consent_text=consent_text,
            welcome_template=welcome_template, kind=kind, headline_dimension=headline_dimension)
        entry_point.tags.set(tags)
    return entry_point


# --- Link and QR code ----------------------------------------------------------------------

def prefilled_text(entry_point: EntryPoint) -> str:
    """The message WhatsApp opens with; it always contains the code."""
    text = (entry_point.text or "").strip() or _("Hallo!")
    if entry_point.code.casefold() not in text.casefold():
        text = f"{text} {entry_point.code}"
    return text


def business_number() -> str:
    """The business's WhatsApp number in digits (wa.me wants no +, spaces or dashes)."""
    digits = re.sub(r"\D", "", settings.WHATSAPP_DISPLAY_PHONE_NUMBER or "")
    if not digits:
        raise ImproperlyConfigured(_(
            "The business's WhatsApp number is not set: set WHATSAPP_DISPLAY_PHONE_NUMBER "
            "(e.g. +49 30 1234567, as shown in WhatsApp Manager) to make links and QR codes."))
    return digits


def entry_point_link(entry_point: EntryPoint) -> str:
    """``https://wa.me/<number>?text=<prefilled text with the code>``."""
    return f"https://wa.me/{business_number()}?text={quote(prefilled_text(entry_point))}"


def entry_point_qr(entry_point: EntryPoint) -> segno.QRCode:
    # Level M survives a scuffed parcel card (15 % damage) and keeps the code small.
    return segno.make(entry_point_link(entry_point), error="m", micro=False)


def qr_png(entry_point: EntryPoint, *, scale: int = 10) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    entry_point_qr(entry_point).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(entry_point: EntryPoint, *, scale: int = 10, inline: bool = False) -> str:
    """The QR code as SVG: a file of its own, or (``inline``) markup for a page."""
    if inline:  # sized by the page's CSS: a viewBox instead of width and height
        return entry_point_qr(entry_point).svg_inline(scale=scale, border=4, omitsize=True)
    return _svg_document(entry_point, scale)


def _svg_document(entry_point: EntryPoint, scale: int) -> str:
    from io import BytesIO

    buffer = BytesIO()
    entry_point_qr(entry_point).save(buffer, kind="svg", scale=scale, border=4,
                                     title=entry_point.name)
    return buffer.getvalue().decode()


# --- Arrivals ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ArrivalIn:
    """One inbound message attributed to one entry point."""

    entry_point: EntryPoint
    contact: Contact
    message_id: str
    occurred_at: datetime
    new_contact: bool = False
    referral: dict | None = None


def referral_clean(raw) -> dict:
    """The referral's fields we keep, as short strings; {} for anything else."""
    if not isinstance(raw, dict):
        return {}
    # No NUL and no lone surrogate: PostgreSQL's jsonb refuses both.
    return {key: str(raw[key])[:500].encode("utf-8", "ignore").decode().replace("\x00", "")
            for key in REFERRAL_FIELDS
            if isinstance(raw.get(key), str | int) and str(raw[key]).strip()}


def arrival_apply(*, arrival: ArrivalIn) -> Arrival | None:
    """Record one arrival and do what the entry point says; None when recorded before.

    Tags and consent come first, so that a welcome of the marketing category may
    go to a contact who opted in by writing. Idempotent per (entry point, message).
    """
    entry_point, contact = arrival.entry_point, arrival.contact
    referral = referral_clean(arrival.referral)
    try:
        with transaction.atomic():
            row = Arrival.objects.create(
                entry_point=entry_point, contact=contact, message_id=arrival.message_id[:128],
                arrived_at=arrival.occurred_at, new_contact=arrival.new_contact,
                referral=referral)
    except IntegrityError:
        return None
    tags = [t for t in entry_point.tags.select_related("dimension")
            if not t.is_archived and not t.dimension.is_archived]
    headline = _headline_tag(entry_point, referral.get("headline", ""))
    if headline is not None:
        tags.append(headline)
    if tags:
        tags_change(contacts=[contact.pk], add=tags, source=Source.ENTRY_POINT,
                    source_ref=f"entrypoint:{entry_point.pk}")
    if entry_point.consent and _consent_record(entry_point, contact):
        row.consented, row.consent_text = True, entry_point.consent_text
        Arrival.objects.filter(pk=row.pk).update(consented=True,
                                                 consent_text=entry_point.consent_text)
    if entry_point.welcome_template_id:
        welcome_send(entry_point=entry_point, contact=contact)
    return row


def _consent_record(entry_point: EntryPoint, contact: Contact) -> bool:
    """Opt in with the entry point as the basis; never over an opt-out or a blocklisting.

    Writing to a QR code is not the explicit "resume" that lifts an opt-out
    (``consent_change_allowed`` with ``asked_by_contact=False``): the person may
    only have had a question.
    """
    if not consent_change_allowed(current=contact.consent_status, new=ConsentStatus.OPTED_IN,
                                  is_blocked=contact.is_blocked):
        return False
    return contact_set_consent(contact=contact, status=ConsentStatus.OPTED_IN,
                               source=_("entry point: %(name)s") % {"name": entry_point.name})


def _headline_tag(entry_point: EntryPoint, headline: str) -> Tag | None:
    """The tag named after an ad's headline, in the entry point's headline dimension."""
    name = " ".join(headline.split())[:120]
    dimension = entry_point.headline_dimension
    if not name or dimension is None:
        return None
    tag = Tag.objects.select_related("dimension").filter(name_key=name_key(name)).first()
    if tag is None:
        try:
            with transaction.atomic():
                tag = tag_create(dimension=dimension, name=name, near_twins_confirmed=True,
                                 reason=_("Headline of a Click-to-WhatsApp ad"))
        except (VocabularyError, IntegrityError) as exc:
            logger.warning("no tag for the ad headline %r: %s", name, exc)
            return Tag.objects.filter(name_key=name_key(name)).first()
    if tag.is_archived or tag.dimension.is_archived:
        return None
    return tag


def welcome_send(*, entry_point: EntryPoint, contact: Contact) -> str:
    """Queue the entry point's welcome for ``contact`` once (see ``campaign_send_triggered``)."""
    campaign = entry_point.welcome_campaign
    if campaign is None or campaign.template_id != entry_point.welcome_template_id:
        first = entry_point.tags.first()
        audience = f'"{first.name}"' if first and '"' not in first.name else ""
        campaign = campaign_triggered_ensure(
            name=_("Welcome · %(name)s") % {"name": entry_point.name},
            template=entry_point.welcome_template, audience=audience)
        EntryPoint.objects.filter(pk=entry_point.pk).update(welcome_campaign=campaign)
        entry_point.welcome_campaign = campaign
    return campaign_send_triggered(campaign=campaign, contact=contact)


def contact_arrivals_erase(*, contact_id: int) -> int:
    """An erased contact's arrivals keep counting for their entry point; the ad referral
    (which may carry the customer's own words) goes."""
    return Arrival.objects.filter(contact_id=contact_id).update(referral={})
