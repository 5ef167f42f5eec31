"""Reads on contacts."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from crm.models import Contact
from crm.phones import try_normalize_phone


def contacts_search(term: str, queryset: QuerySet[Contact] | None = None) -> QuerySet[Contact]:
    """Contacts whose number is ``term`` (any common writing) or whose name starts with it.

    A number is normalised to E.164 and looked up exactly through the unique
    index: no scan of the whole table.
    """
    queryset = Contact.objects.all() if queryset is None else queryset
    term = (term or "").strip()
    if not term:
        return queryset
    phone = try_normalize_phone(term)
    if phone:
        return queryset.filter(phone=phone)
    words = term.split()
    q = Q()
    for word in words:
        q &= Q(first_name__istartswith=word) | Q(last_name__istartswith=word)
    return queryset.filter(q)
