"""Thin Celery tasks for label sync: ids in, one service call, retries on transient errors."""

from __future__ import annotations

from celery import shared_task
from django.utils.translation import gettext as _

from campaigns.chatwoot.client import ChatwootTransientError
from campaigns.chatwoot.models import ChatwootConnection
from campaigns.chatwoot.services import contact_labels_push, operation_push_targets, sync_note_add
from crm.models import Contact

MAX_RETRIES = 6


@shared_task(acks_late=True, ignore_result=True)
def chatwoot_operation_push_task(operation: str) -> None:
    """Fan a tag change out to one push per contact whose synced tags it changed."""
    for connection_id, contact_id in operation_push_targets(operation=operation):
        chatwoot_labels_push_task.delay(connection_id, contact_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=MAX_RETRIES)
def chatwoot_labels_push_task(self, connection_id: int, contact_id: int) -> str:
    """Push one contact's labels; retried with backoff (5 s, 10 s, 20 s … 5 min) while
    Chatwoot is unreachable or answers 429/5xx, then noted for the administrator."""
    try:
        return contact_labels_push(connection_id=connection_id, contact_id=contact_id)
    except ChatwootTransientError as exc:
        if self.request.retries >= self.max_retries:
            connection = ChatwootConnection.objects.filter(pk=connection_id).first()
            if connection:
                sync_note_add(connection=connection,
                              contact=Contact.objects.filter(pk=contact_id).first(),
                              message=_("Chatwoot did not answer after %(n)d tries: %(error)s")
                              % {"n": self.max_retries + 1, "error": str(exc)})
            return "failed"
        raise self.retry(exc=exc, countdown=min(300, 5 * 2 ** self.request.retries)) from exc
