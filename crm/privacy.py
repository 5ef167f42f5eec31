"""A customer's data on request and erased on request; how long stored data is kept.

Each app knows the rows it owns that name a contact or a number, so each app registers,
from its ``AppConfig.ready()``, a ``PrivacyPart``: an exporter (what it holds about the
contact, as JSON) and an eraser (a function of its own ``services`` that deletes or
anonymises those rows). This module runs them: ``contact_export`` for access
(GDPR Art. 15), ``contact_erase`` for erasure (Art. 17). crm is the lowest layer, so it
never imports the apps that fill the registry.

The same goes for retention: an app registers a ``Retention`` (what it prunes, its
setting's default) and ``retention_prune`` runs them from beat, in batches.

docs/privacy.md says what is exported, removed and kept, and why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _

from crm.models import Contact, Erasure, RetentionPeriod
from crm.phones import InvalidPhoneNumber, normalize_phone

logger = logging.getLogger(__name__)

ERASED = "[erased]"  # what stands where a piece of erased text was
ERASED_PHONE_PREFIX = "erased:"  # an anonymised contact's phone: "erased:<id>", never a number
_SEPARATORS = re.compile(r"[\s\-./()\u00a0+]")


class ErasureError(ValueError):
    """Why a contact cannot be erased; ``str()`` is a sentence for the person who asked."""


# --- Hashing the number -------------------------------------------------------------------

def _salt() -> bytes:
    """``PRIVACY_NUMBER_SALT``; without it, a key derived from ``SECRET_KEY``.

    Changing it forgets which numbers were erased (docs/privacy.md): set it once.
    """
    salt = settings.PRIVACY_NUMBER_SALT or f"tagwerk-erasure:{settings.SECRET_KEY}"
    return salt.encode()


def number_hash(phone: str) -> str:
    """The salted hash (HMAC-SHA256) of an E.164 number, as kept after an erasure."""
    return hmac.new(_salt(), phone.encode(), hashlib.sha256).hexdigest()


def numbers_erased(phones: Iterable[str]) -> set[str]:
    """The numbers among ``phones`` (E.164) that were erased on request: never message them."""
    phones = {p for p in phones if p}
    if not phones or not Erasure.objects.exists():
        return set()
    hashes = {number_hash(p): p for p in phones}
    found: set[str] = set()
    keys = list(hashes)
    for start in range(0, len(keys), 5000):
        found.update(Erasure.objects.filter(phone_hash__in=keys[start:start + 5000])
                     .values_list("phone_hash", flat=True))
    return {hashes[h] for h in found}


# --- Who is being erased: what names them in text ------------------------------------------

@dataclass(frozen=True)
class Subject:
    """The contact being erased, with what recognises its number and name in any text."""

    contact: Contact
    phone: str
    national: str  # the national significant number: in every writing of the number
    names: tuple[str, ...] = ()

    def matches(self, text: Any) -> bool:
        """Whether ``text`` names the number (any writing: +49 170-…, 0170…, wa_id digits)
        or the full name."""
        if not text:
            return False
        text = str(text)
        if len(self.national) >= 6 and self.national in _SEPARATORS.sub("", text):
            return True
        folded = text.casefold()
        return any(name in folded for name in self.names)

    def scrub(self, value: Any) -> Any:
        """``value`` (JSON) with every string naming the subject replaced, every list item
        (a row) naming it replaced whole, and every key naming it left out."""
        if isinstance(value, str) or (isinstance(value, int | float)
                                      and not isinstance(value, bool)):
            return ERASED if self.matches(value) else value
        if isinstance(value, list):
            return [ERASED if self.matches(json.dumps(item, ensure_ascii=False)) else item
                    for item in value]
        if isinstance(value, dict):
            return {key: self.scrub(item) for key, item in value.items()
                    if not self.matches(key)}
        return value


def subject_of(contact: Contact) -> Subject:
    try:
        national = str(phonenumbers.national_significant_number(
            phonenumbers.parse(contact.phone)))
    except phonenumbers.NumberParseException:
        national = re.sub(r"\D", "", contact.phone)
    first, last = contact.first_name.strip(), contact.last_name.strip()
    names = {f"{first} {last}", f"{last} {first}", f"{last}{first}", f"{first}{last}"}
    names = tuple(sorted(n.casefold() for n in names if first and last))
    if not names and (first or last) and len(first or last) >= 4:
        names = ((first or last).casefold(),)
    return Subject(contact=contact, phone=contact.phone, national=national, names=names)


# --- The registry --------------------------------------------------------------------------

@dataclass(frozen=True)
class PrivacyPart:
    """One app's rows about a contact.

    ``export(contact)`` returns them as JSON values (a list of rows, or one dict);
    ``erase(subject)`` deletes or anonymises them and returns how many rows it touched;
    ``count(contact)``, how many rows the export would list, with a ``COUNT`` query (the
    erasure's confirmation page; without it the export is built and counted).
    """

    name: str
    label: str | Promise
    export: Callable[[Contact], Any]
    erase: Callable[[Subject], int]
    count: Callable[[Contact], int] | None = None


@dataclass
class PrivacyParts:
    _parts: dict[str, PrivacyPart] = field(default_factory=dict)

    def register(self, part: PrivacyPart) -> None:
        """Add ``part``; the same name again replaces it (registration order is kept)."""
        self._parts[part.name] = part

    def __iter__(self):
        return iter(list(self._parts.values()))


privacy_parts = PrivacyParts()


def contact_by_phone(raw: str) -> Contact:
    """The contact with this number in any writing; ``ErasureError`` when there is none."""
    try:
        phone = normalize_phone(raw)
    except InvalidPhoneNumber as exc:
        raise ErasureError(str(exc)) from None
    contact = Contact.objects.filter(phone=phone).first()
    if contact is None:
        raise ErasureError(_("No contact has the number %(phone)s.") % {"phone": phone})
    return contact


# --- Access --------------------------------------------------------------------------------

def contact_export(contact: Contact) -> dict[str, Any]:
    """Everything Tagwerk holds about ``contact``, one key per part, as JSON values."""
    data: dict[str, Any] = {"exported_at": timezone.now().isoformat(), "phone": contact.phone}
    for part in privacy_parts:
        data[part.name] = part.export(contact)
    return data


def erasure_plan(contact: Contact) -> list[tuple[str, int]]:
    """What an erasure of ``contact`` takes away: (label, rows) per part, for the
    confirmation page."""
    return [(str(part.label), part.count(contact) if part.count else _rows(part, contact))
            for part in privacy_parts]


def _rows(part: PrivacyPart, contact: Contact) -> int:
    rows = part.export(contact)
    return len(rows) if isinstance(rows, list) else int(bool(rows))


# --- Erasure -------------------------------------------------------------------------------

def is_erased(contact: Contact) -> bool:
    return contact.phone.startswith(ERASED_PHONE_PREFIX)


def erasure_check(contact: Contact) -> None:
    """Raise ``ErasureError`` when ``contact`` cannot be erased (already erased)."""
    if is_erased(contact):
        raise ErasureError(_("This contact was erased already."))


def contact_erase(*, contact: Contact, via: str, actor=None, reason: str = "") -> Erasure:
    """Erase ``contact``: every part deletes or anonymises its rows, in one transaction.

    Afterwards no row names the number or the name in clear text; the contact row stays
    anonymised (blocklisted, no name, its phone ``erased:<id>``) so report totals that
    count it stay right. The audit record keeps who, when, why and the number's salted
    hash, which keeps the number from being messaged or imported again.
    """
    erasure_check(contact)
    removed: dict[str, int] = {}
    with transaction.atomic():
        # Two erasures of one contact at once (the admin and the customer's confirming
        # reply): the row lock makes the second wait, then find it erased and refuse.
        contact = Contact.objects.select_for_update().filter(pk=contact.pk).first() or contact
        erasure_check(contact)
        subject = subject_of(contact)
        # Apps built on crm first: crm anonymises the contact row itself last.
        for part in reversed(list(privacy_parts)):
            removed[part.name] = part.erase(subject)
        erasure = Erasure.objects.create(
            phone_hash=number_hash(subject.phone), via=via, reason=reason[:2000],
            actor=actor if getattr(actor, "pk", None) else None, removed=removed)
    logger.info("contact %s erased via %s (erasure %s): %s", contact.pk, via, erasure.pk,
                removed)
    return erasure


# --- Retention -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Retention:
    """One kind of stored data that is pruned after a period.

    ``prune(before, limit)`` deletes or empties at most ``limit`` rows older than
    ``before`` in one or two set-based statements and returns how many it touched.
    """

    key: str
    label: str | Promise
    protects: str | Promise
    prune: Callable[[datetime, int], int]


retentions: dict[str, Retention] = {}


def register_retention(retention: Retention) -> None:
    retentions[retention.key] = retention


def retention_days(key: str) -> int | None:
    """Days ``key`` is kept: the admin's period, else ``PRIVACY_RETENTION_DAYS``; None
    (or 0) keeps it forever."""
    row = RetentionPeriod.objects.filter(key=key).first()
    days = row.days if row is not None else settings.PRIVACY_RETENTION_DAYS.get(key)
    return days or None


def retention_prune(*, now: datetime | None = None, batch: int = 1000,
                    max_seconds: float = 60.0, keys: Collection[str] | None = None
                    ) -> tuple[dict[str, int], bool]:
    """Prune every registered kind in batches; return (rows per kind, more left).

    Stops after ``max_seconds`` with ``more left`` True, so the beat task can queue a
    successor instead of running for minutes.
    """
    now = now or timezone.now()
    deadline = time.monotonic() + max_seconds
    counts: dict[str, int] = {}
    for key, retention in retentions.items():
        if keys is not None and key not in keys:
            continue
        days = retention_days(key)
        if days is None:
            continue
        before = now - timedelta(days=days)
        total = 0
        while True:
            done = retention.prune(before, batch)
            total += done
            if done < batch:
                break
            if time.monotonic() > deadline:
                counts[key] = total
                logger.info("retention: pruned %s (time is up, more left)", counts)
                return counts, True
        counts[key] = total
    logger.info("retention: pruned %s", counts)
    return counts, False
