"""Reads on imports."""

from __future__ import annotations

from django.db.models import Q

from crm.models import Contact
from tagging.imports.models import ImportedChange, ImportedContact, ImportJob


def contact_imports_export(contact: Contact) -> list[dict]:
    """The imports that created or changed the contact, with the values they changed."""
    created = set(ImportedContact.objects.filter(contact_id=contact.pk)
                  .values_list("job_id", flat=True))
    changes = {c.job_id: c for c in ImportedChange.objects.filter(contact_id=contact.pk)}
    jobs = ImportJob.objects.filter(pk__in=created | changes.keys()).order_by("created_at")
    return [{
        "import": job.pk, "file": job.original_name,
        "at": (job.finished_at or job.created_at).isoformat(),
        "created_the_contact": job.pk in created,
        "values_before": changes[job.pk].before if job.pk in changes else {},
        "values_written": changes[job.pk].after if job.pk in changes else {},
    } for job in jobs]


def contact_imports_count(contact: Contact) -> int:
    """How many imports ``contact_imports_export`` lists: one COUNT."""
    return ImportJob.objects.filter(
        Q(pk__in=ImportedContact.objects.filter(contact_id=contact.pk).values("job_id"))
        | Q(pk__in=ImportedChange.objects.filter(contact_id=contact.pk).values("job_id"))
    ).count()
