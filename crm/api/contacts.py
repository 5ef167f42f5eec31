"""Contacts in the API: their fields as the API shows them, and their writes.

The addresses live with the routers that can answer them whole (a contact is
shown with its tags, and listed by an expression): ``tagging.api`` serves
``/contacts/{phone}/`` and ``tagging.audiences.api`` serves ``/contacts/``. Both
take the fields and the writes from here, so that a contact is written only by
``crm.services`` and by the same rules everywhere.

Consent follows the rules of imports (``crm.services.consent_change_allowed``):
a new contact is opted in only with a ``consent_source`` saying where it agreed;
an opted-out or blocklisted number is never opted in (409, nothing changed);
moving to opted out is always allowed.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Schema
from pydantic import AfterValidator, ConfigDict, Field, field_validator

from crm.api.framework import ApiError, Text, phone_from_path
from crm.event_data import json_problem
from crm.models import ConsentStatus, Contact
from crm.phones import country_of
from crm.services import consent_change_allowed, contacts_insert, contacts_update


class ContactFields(Schema):
    """A contact's own fields (its tags are added by the routers that show them)."""

    id: int
    phone: str = Field(description="E.164, the contact's identity")
    first_name: str
    last_name: str
    salutation: str
    gender: str = Field(description="f, m, d or empty")
    birth_date: date | None
    language: str
    country: str = Field(description="Derived from the phone number")
    city: str
    occupation: str
    external_label: str
    notes: str
    attributes: dict
    consent_status: str = Field(description="unknown, opted_in or opted_out")
    consent_source: str
    consent_at: datetime | None
    is_blocked: bool
    purchase_count: int
    total_spent: Decimal
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    last_interaction_at: datetime | None
    last_read_at: datetime | None
    last_reply_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _short(limit: int):
    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(_("at most %(n)d characters") % {"n": limit})
        return value.strip()
    return AfterValidator(check)


def _attributes(value: dict) -> dict:
    problem = json_problem(value, "attributes")
    if problem:
        raise ValueError(f"{problem[0]} {problem[2]}")
    return value


Attributes = Annotated[dict, AfterValidator(_attributes)]


class ContactWritable(Schema):
    """Fields a client may set; all optional (``PATCH`` changes exactly those given)."""

    model_config = ConfigDict(extra="forbid")

    first_name: Annotated[Text, _short(100)] | None = None
    last_name: Annotated[Text, _short(100)] | None = None
    salutation: Annotated[Text, _short(40)] | None = None
    gender: Literal["f", "m", "d", ""] | None = None
    birth_date: date | None = None
    language: Annotated[Text, _short(10)] | None = None
    city: Annotated[Text, _short(100)] | None = None
    occupation: Annotated[Text, _short(100)] | None = None
    external_label: Annotated[Text, _short(30)] | None = None
    notes: Annotated[Text, _short(10_000)] | None = None
    attributes: Attributes | None = Field(
        None, description="Merged into the stored attributes; a key set to null is removed")
    consent_status: Literal["opted_in", "opted_out"] | None = Field(
        None, description="opted_in needs consent_source; never lifts an opt-out or a block")
    consent_source: Annotated[Text, _short(200)] | None = Field(
        None, description="Where the person agreed, e.g. “shop checkout 2025”")

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, value: date | None) -> date | None:
        if value is not None and value > timezone.localdate():
            raise ValueError(_("lies in the future"))
        return value


class ContactCreate(ContactWritable):
    phone: Annotated[Text, _short(40)] = Field(
        description="Any writing of the number: +49 170 1234567, 0049…, 0170… (default region)")


TEXT_FIELDS = ("first_name", "last_name", "salutation", "gender", "language", "city",
               "occupation", "external_label", "notes")


def _consent_source_needed(values: dict) -> None:
    if values.get("consent_status") == ConsentStatus.OPTED_IN and not values.get(
            "consent_source"):
        raise ApiError(422, "invalid", _(
            "An opt-in needs “consent_source”: say where the person agreed, e.g. “shop "
            "checkout 2025”."), "consent_source")


def _fact_values(values: dict) -> dict:
    """Field values as stored: a text field set to null is emptied."""
    facts = {name: values[name] or "" for name in TEXT_FIELDS if name in values}
    if "birth_date" in values:
        facts["birth_date"] = values["birth_date"]
    return facts


def contact_create(data: ContactCreate) -> Contact:
    """Create the contact ``data`` describes; ``ApiError`` 409 when the number exists."""
    values = data.model_dump(exclude_unset=True)
    phone = phone_from_path(values.pop("phone"))
    _consent_source_needed(values)
    now = timezone.now()
    row = {"phone": phone, "country": country_of(phone), **_fact_values(values),
           "attributes": {k: v for k, v in (values.get("attributes") or {}).items()
                          if v is not None},
           "consent_status": values.get("consent_status") or ConsentStatus.UNKNOWN,
           "consent_source": values.get("consent_source") or "",
           "consent_at": now if values.get("consent_status") else None,
           "created_at": now, "updated_at": now}
    if not contacts_insert(rows=[row], skip_existing=True):
        raise ApiError(409, "contact_exists", _(
            "A contact with the number %(phone)s exists already; change it with PATCH "
            "/api/v1/contacts/%(phone)s/.") % {"phone": phone}, "phone")
    return Contact.objects.get(phone=phone)


def contact_update(contact: Contact, data: ContactWritable) -> Contact:
    """Change the fields ``data`` gives, all or none; return the contact as stored."""
    values = data.model_dump(exclude_unset=True)
    changes = _fact_values(values)
    if "attributes" in values and values["attributes"] is not None:
        merged = dict(contact.attributes or {})
        for key, value in values["attributes"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        changes["attributes"] = merged
    status = values.get("consent_status")
    if status:
        _consent_source_needed(values)
        if status != contact.consent_status:
            if not consent_change_allowed(current=contact.consent_status, new=status,
                                          is_blocked=contact.is_blocked):
                raise ApiError(409, "consent_refused", _(
                    "%(phone)s is blocklisted or opted out; only the person can opt in again "
                    "(by writing “resume” on WhatsApp). Nothing was changed.")
                    % {"phone": contact.phone}, "consent_status")
            changes.update(consent_status=status, consent_at=timezone.now(),
                           consent_source=values.get("consent_source") or "")
    changes = {k: v for k, v in changes.items() if getattr(contact, k) != v}
    if changes:
        contacts_update(changes={tuple(changes): [(contact.pk, changes)]})
    return Contact.objects.get(pk=contact.pk)
