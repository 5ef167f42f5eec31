"""Thin Celery tasks of crm: ids in, one service call (``CrmConfig.ready`` imports this)."""

from __future__ import annotations

from celery import shared_task

from crm.models import Contact
from crm.privacy import contact_erase, is_erased, retention_prune

RETENTION_TASK = "crm.tasks.retention_prune_task"


@shared_task(acks_late=True, ignore_result=True)
def retention_prune_task() -> None:
    """Run by beat daily: prune what outlived its retention period; a successor goes on."""
    _counts, more = retention_prune()
    if more:
        retention_prune_task.delay()


@shared_task(acks_late=True, ignore_result=True)
def contact_erase_task(contact_id: int, via: str, reason: str = "") -> None:
    """Erase a contact (e.g. confirmed by the customer's own message); a repeat does nothing."""
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is not None and not is_erased(contact):
        contact_erase(contact=contact, via=via, reason=reason)
