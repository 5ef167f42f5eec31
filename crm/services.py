"""Writes on contacts."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from crm.models import ConsentStatus, Contact
from crm.phones import country_of, normalize_phone


@transaction.atomic
def contact_get_or_create(*, phone: str, region: str | None = None,
                          defaults: dict[str, Any] | None = None) -> tuple[Contact, bool]:
    """Return the contact for ``phone`` (any common writing), creating it with ``defaults``.

    Raises ``crm.phones.InvalidPhoneNumber`` for a number that cannot be real.
    """
    e164 = normalize_phone(phone, region)
    values = {"country": country_of(e164), **(defaults or {})}
    return Contact.objects.get_or_create(phone=e164, defaults=values)


def contact_set_consent(*, contact: Contact, status: str, source: str) -> bool:
    """Record a consent change; return False when nothing changed.

    An opted-out or blocklisted number is never switched back to opted in by
    this call unless ``source`` is an explicit re-opt-in by the person.
    """
    if contact.consent_status == status:
        return False
    if status == ConsentStatus.OPTED_IN and contact.is_blocked:
        return False
    contact.consent_status, contact.consent_source = status, source[:200]
    contact.consent_at = timezone.now()
    contact.save(update_fields=["consent_status", "consent_source", "consent_at", "updated_at"])
    return True
