"""Writes on contacts."""

from __future__ import annotations

from django.utils import timezone

from crm.models import ConsentStatus, Contact


def contact_set_consent(*, contact: Contact, status: str, source: str) -> bool:
    """Record a consent change; return False when nothing changed.

    A blocklisted number is never switched to opted in. Callers switch an
    opted-out number back only on the person's own request (a WhatsApp
    "resume"); imports never call this for opted-out numbers.
    """
    if contact.consent_status == status:
        return False
    if status == ConsentStatus.OPTED_IN and contact.is_blocked:
        return False
    contact.consent_status, contact.consent_source = status, source[:200]
    contact.consent_at = timezone.now()
    contact.save(update_fields=["consent_status", "consent_source", "consent_at", "updated_at"])
    return True
