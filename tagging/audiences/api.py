"""Audiences in ``/api/v1/`` (composed in ``config.api``): contacts chosen by an
expression, saved segments (count, members) and bulk tag operations (start, progress).

``/contacts/`` lives here because its list takes ``where``, an expression of the segment
language (docs/audiences.md); creating a contact (``POST``) shares the address and is
written by ``crm.api.contacts``. Lists come in id order with cursors; an expression the
in-memory index can answer alone is paged from its bitmap, others by SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field, model_validator

from crm.api.contacts import ContactCreate, contact_create
from crm.api.framework import ApiError, Text, TokenAuth, not_found, page_of, page_of_ids, responses
from crm.models import ApiScope, Contact
from tagging.api import (
    ContactOut,
    ContactPage,
    TagNames,
    contact_out,
    contacts_out,
    tags_allowed_check,
    tags_resolve,
)
from tagging.audiences.language import SegmentError
from tagging.audiences.models import BulkOperation, Segment
from tagging.audiences.selectors import bitmap_matching, contacts_matching, count_matching
from tagging.audiences.services import bulk_operation_start
from tagging.selectors import contacts_with_tags
from tagging.services import TagChangeError

router = Router(tags=["audiences"])


def _where_error(exc: SegmentError, field: str) -> ApiError:
    return ApiError(422, "invalid_expression", str(exc), field)


def contacts_page(expression: str, *, cursor: str | None, limit: int | None,
                  field: str = "where") -> dict:
    """A page of the contacts matching ``expression`` (all contacts when empty)."""
    try:
        found = bitmap_matching(expression) if expression.strip() else None
        if found is not None:
            ids, next_cursor = page_of_ids(found, cursor=cursor, limit=limit)
            rows = {c.pk: c for c in contacts_with_tags(Contact.objects.filter(pk__in=ids))}
            return {"items": contacts_out(rows[i] for i in ids if i in rows),
                    "next_cursor": next_cursor}
        contacts = contacts_matching(expression) if expression.strip() else \
            Contact.objects.all()
        page = page_of(contacts_with_tags(contacts), cursor=cursor, limit=limit)
    except SegmentError as exc:
        raise _where_error(exc, field) from None
    return {"items": contacts_out(page["items"]), "next_cursor": page["next_cursor"]}


class ContactListing(Schema):
    where: Annotated[Text, Field(max_length=10_000)] = Field(
        "", description='An expression, e.g. `"VIP" AND last_interaction within 30d`')
    cursor: str | None = None
    limit: int | None = Field(None, description="Contacts per page (default 100, at most 1000)")


@router.get("/contacts/", auth=TokenAuth(ApiScope.CONTACTS_READ),
            response=responses({200: ContactPage}, 400, 422), summary="Contacts",
            description="Scope `contacts:read`. All contacts, or those matching `where` (the "
                        "segment language of docs/audiences.md), in id order, a page at a "
                        "time: pass `next_cursor` back as `cursor`.")
def contacts_list(request: HttpRequest, query: Query[ContactListing]):
    return contacts_page(query.where, cursor=query.cursor, limit=query.limit)


@router.post("/contacts/", auth=TokenAuth(ApiScope.CONTACTS_WRITE),
             response=responses({201: ContactOut}, 409, 422), summary="Create a contact",
             description="Scope `contacts:write`. 409 when the number exists (change it with "
                         "PATCH). An opt-in needs `consent_source`.")
def contacts_create(request: HttpRequest, data: ContactCreate):
    return Status(201, contact_out(contact_create(data)))


# --- segments -------------------------------------------------------------------------------


class SegmentOut(Schema):
    id: int
    name: str
    expression: str
    description: str
    count: int | None = Field(description="Matching contacts when last counted")
    counted_at: datetime | None


class SegmentPage(Schema):
    items: list[SegmentOut]
    next_cursor: str | None


class SegmentCount(Schema):
    id: int
    count: int
    counted_at: datetime


class Paging(Schema):
    cursor: str | None = None
    limit: int | None = None


def _segment(pk: int) -> Segment:
    segment = Segment.objects.filter(pk=pk).first()
    if segment is None:
        raise not_found(_("There is no segment %(id)d.") % {"id": pk}, "id")
    return segment


@router.get("/segments/", auth=TokenAuth(ApiScope.SEGMENTS_READ),
            response=responses({200: SegmentPage}, 400, 422), summary="Saved segments",
            description="Scope `segments:read`. Counts as last refreshed (hourly).")
def segments_list(request: HttpRequest, query: Query[Paging]):
    return page_of(Segment.objects.all(), cursor=query.cursor, limit=query.limit)


@router.get("/segments/{id}/", auth=TokenAuth(ApiScope.SEGMENTS_READ),
            response=responses({200: SegmentOut}, 404), summary="A saved segment",
            description="Scope `segments:read`.")
def segment_get(request: HttpRequest, id: int):
    return _segment(id)


@router.get("/segments/{id}/count/", auth=TokenAuth(ApiScope.SEGMENTS_READ),
            response=responses({200: SegmentCount}, 404, 422), summary="Count a segment now",
            description="Scope `segments:read`. Counted now (from the in-memory index where "
                        "it can answer).")
def segment_count(request: HttpRequest, id: int):
    segment = _segment(id)
    try:
        count = count_matching(segment.expression)
    except SegmentError as exc:
        raise _where_error(exc, "expression") from None
    return {"id": segment.pk, "count": count, "counted_at": timezone.now()}


@router.get("/segments/{id}/members/", auth=TokenAuth(ApiScope.SEGMENTS_READ),
            response=responses({200: ContactPage}, 400, 404, 422), summary="A segment's members",
            description="Scope `segments:read`. Contacts with their tags, in id order, a page "
                        "at a time.")
def segment_members(request: HttpRequest, id: int, query: Query[Paging]):
    return contacts_page(_segment(id).expression, cursor=query.cursor, limit=query.limit,
                         field="expression")


# --- bulk operations -------------------------------------------------------------------------


class BulkIn(Schema):
    model_config = ConfigDict(extra="forbid")

    where: Annotated[Text, Field(max_length=10_000)] | None = Field(
        None, description="The contacts, as an expression")
    segment: int | None = Field(None, description="Or: the id of a saved segment")
    add: TagNames = Field(default_factory=list)
    remove: TagNames = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_selection(self):
        if (self.where is None) == (self.segment is None):
            raise ValueError(_("give either “where” or “segment”"))
        if not self.add and not self.remove:
            raise ValueError(_("name at least one tag to add or remove"))
        return self


class BulkOut(Schema):
    id: int
    status: str = Field(description="pending, running, done, failed or undone")
    selection: str = Field(validation_alias="expression")
    total: int
    processed: int
    percent: int
    added: int
    removed: int
    replaced: int
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@router.post("/bulk-operations/", auth=TokenAuth(ApiScope.BULK_WRITE),
             response=responses({202: BulkOut}, 422), summary="Start a bulk tag change",
             description="Scope `bulk:write`, and only tags of the dimensions the token names. "
                         "The contacts are fixed now; small changes finish before the answer, "
                         "large ones run on a worker: follow `GET /bulk-operations/{id}/`.")
def bulk_start(request: HttpRequest, data: BulkIn):
    token = request.auth
    expression = data.where if data.where is not None else _segment(data.segment).expression
    field = "where" if data.where is not None else "segment"
    add, remove = tags_resolve(data.add, "add"), tags_resolve(data.remove, "remove")
    fields = {t.pk: f"remove[{i}]" for i, t in enumerate(remove)}
    fields.update({t.pk: f"add[{i}]" for i, t in enumerate(add)})
    tags_allowed_check(token, [*add, *remove], fields)
    try:
        contacts = contacts_matching(expression)
        # The selection records who asked: a comment line is still a valid expression.
        selection = f"{expression}\n-- {_('API token')}: {token.name}"
        bulk = bulk_operation_start(contacts=contacts, add=add, remove=remove, actor=None,
                                    selection=selection)
    except SegmentError as exc:
        raise _where_error(exc, field) from None
    except TagChangeError as exc:
        raise ApiError(422, "tag_change_refused", str(exc), "add") from None
    bulk.refresh_from_db()
    return Status(202, bulk)


@router.get("/bulk-operations/{id}/", auth=TokenAuth(ApiScope.BULK_WRITE),
            response=responses({200: BulkOut}, 404), summary="A bulk operation's progress",
            description="Scope `bulk:write`.")
def bulk_get(request: HttpRequest, id: int):
    bulk = BulkOperation.objects.filter(pk=id).first()
    if bulk is None:
        raise not_found(_("There is no bulk operation %(id)d.") % {"id": id}, "id")
    return bulk
