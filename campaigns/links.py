"""Tracked links: ``link:<url>`` variables become ``/l/<token>/`` per send.

The token names a send and the variable's position in its template, signed with a
short HMAC, so no row is stored per send: ``/l/<token>/`` finds the send, reads the
target from the template's variables, records a ``link_clicked`` event and redirects.

A URL button whose ``source`` is a ``link:`` gets position ``BUTTON + its index``
(its approved URL ends in ``/l/{{1}}``, the token being the suffix). Test sends have
no send: their tokens name the template instead (prefix ``-``) and record nothing.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.signing import b62_decode, b62_encode
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from campaigns.models import Send, Template
from campaigns.selectors import campaign_templates
from crm.events import EventIn, events_record
from crm.models import EventKind

PREFIX = "link:"
SALT = "campaigns.links"
MAC_LENGTH = 16  # hex digits: 64 bits, plenty for a link that only records a click
BUTTON = 100  # link positions from here on are URL buttons (index - BUTTON)
TEMPLATE_MARK = "-"  # a token naming a template (a test send), not a send
_url_valid = URLValidator(schemes=["http", "https"])


def link_target(source: str) -> str | None:
    """The http(s) URL of a ``link:<url>`` source; None for anything else."""
    if not source.startswith(PREFIX):
        return None
    url = source[len(PREFIX):].strip()
    try:
        _url_valid(url)
    except ValidationError:
        return None
    return url


def _mac(value: str) -> str:
    # Django's Signer would add a 43-character signature; a truncated salted_hmac (the
    # primitive Signer uses) keeps the link short enough to read in a chat.
    return salted_hmac(SALT, value, algorithm="sha256").hexdigest()[:MAC_LENGTH]


def link_token(send_id: int, index: int, *, template_id: int | None = None) -> str:
    """The token of link ``index`` in send ``send_id`` (or, for a test send, in the
    template ``template_id``)."""
    owner = TEMPLATE_MARK + b62_encode(template_id) if template_id else b62_encode(send_id)
    value = f"{owner}.{index}"
    return f"{value}.{_mac(value)}"


def links_base() -> str:
    """What every tracked link starts with; a URL button's approved URL is this + ``{{1}}``."""
    return settings.TAGWERK_PUBLIC_URL.rstrip("/") + reverse("campaigns:link", args=["x"])[:-2]


def link_url(send_id: int, index: int) -> str:
    return links_base() + link_token(send_id, index) + "/"


def link_parse(token: str) -> tuple[int, int, bool] | None:
    """(send or template id, link position, names a template) of a genuine token; None
    for anything else."""
    value, _dot, mac = token.rpartition(".")
    owner, _dot, index = value.partition(".")
    of_template = owner.startswith(TEMPLATE_MARK)
    owner = owner.removeprefix(TEMPLATE_MARK)
    if not (owner.isascii() and owner.isalnum() and index.isascii() and index.isdigit()
            and len(index) <= 3 and len(owner) <= 10):
        return None
    if not constant_time_compare(mac, _mac(value)):
        return None
    return b62_decode(owner), int(index), of_template


def _source(raw) -> str:
    return str(raw.get("source", "") if isinstance(raw, dict) else raw).strip()


def template_link(template: Template, index: int) -> str | None:
    """The target of link position ``index`` in ``template`` (a variable or a URL button)."""
    if index >= BUTTON:
        items, index = template.buttons or [], index - BUTTON  # as WhatsApp counts them
    else:
        items = template.variables or []
    return link_target(_source(items[index])) if index < len(items) else None


def _resolve(token: str) -> tuple[Send | None, int, str] | None:
    parsed = link_parse(token)
    if parsed is None:
        return None
    owner, index, of_template = parsed
    if of_template:
        template = Template.objects.filter(pk=owner).first()
        url = template_link(template, index) if template else None
        return (None, index, url) if url else None
    send = Send.objects.select_related("campaign__template").filter(pk=owner).first()
    if send is None:
        return None
    template = campaign_templates(send.campaign).get(send.variant) or send.campaign.template
    url = template_link(template, index)
    return (send, index, url) if url else None


def link_destination(token: str) -> str | None:
    """Where the link of ``token`` leads, recording nothing (None: no such link)."""
    found = _resolve(token)
    return found[2] if found else None


def link_click(*, token: str, now: datetime | None = None) -> str | None:
    """Record a click on the link of ``token`` and return where it leads (None: no such link).

    Records one ``link_clicked`` event per send, link and minute (a double tap counts
    once) and stamps ``Send.clicked_at`` the first time.
    """
    found = _resolve(token)
    if found is None:
        return None
    send, index, url = found
    if send is None:  # a test send's link: nobody to record a click for
        return url
    now = now or timezone.now()
    # IntegrityError: a parallel request recorded this very click (send, link, minute).
    with contextlib.suppress(IntegrityError):
        _record(send, index, url, now)
    return url


def _record(send: Send, index: int, url: str, now: datetime) -> None:
    with transaction.atomic():
        events_record(source="link", create_contacts=False, events=[EventIn(
            kind=EventKind.LINK_CLICKED, contact_id=send.contact_id, occurred_at=now,
            payload={"url": url, "campaign": send.campaign_id, "send": send.pk},
            source_id=f"{send.pk}:{index}:{now:%Y%m%d%H%M}")])
        Send.objects.filter(pk=send.pk, clicked_at__isnull=True).update(clicked_at=now)
