"""The vocabulary and a contact's tags in ``/api/v1/`` (composed in ``config.api``).

* ``/contacts/{phone}/``: the contact with its tags (``GET``), its fields (``PATCH``,
  written by ``crm.api.contacts``), and ``/contacts/{phone}/tags/`` (``POST``): add and
  remove tags through ``tagging.services.tags_change`` with source “api” and the
  token's name as the history's reference. A token changes only the tags of the
  dimensions it names (403 naming the dimension otherwise).
* ``/dimensions/`` and ``/tags/``: read with any token; create and change with
  ``tags:admin``, through ``tagging.vocabulary`` (its rules, its version log).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from crm.api.contacts import ContactFields, ContactWritable, contact_update
from crm.api.framework import (
    ApiError,
    Text,
    TokenAuth,
    contact_by_phone,
    not_found,
    page_of,
    phone_from_path,
    responses,
)
from crm.models import ApiScope, ApiToken, Contact
from crm.tokens import dimension_names
from tagging.models import Dimension, Source, Tag, TagAssignment, TagKind
from tagging.names import name_key
from tagging.selectors import contacts_with_tags, tags_by_name
from tagging.services import TagChangeError, tags_change
from tagging.vocabulary import (
    NearTwinWarning,
    VocabularyError,
    dimension_archive,
    dimension_restore,
    dimension_save,
    tag_archive,
    tag_restore,
    tag_save,
)

# --- contacts with their tags ---------------------------------------------------------------


class TagHeld(Schema):
    name: str
    dimension: str
    source: str = Field(description="manual, import, rule, bulk, api, campaign, expiry …")
    added_at: datetime


class ContactOut(ContactFields):
    tags: list[TagHeld]


class ContactPage(Schema):
    items: list[ContactOut]
    next_cursor: str | None


def contacts_out(contacts: Iterable[Contact]) -> list[dict]:
    """The API's view of ``contacts``, which carry their assignments prefetched
    (``tagging.selectors.contacts_with_tags``)."""
    fields = list(ContactFields.model_fields)
    return [{**{name: getattr(c, name) for name in fields}, "tags": [
        {"name": a.tag.name, "dimension": a.tag.dimension.name, "source": a.source,
         "added_at": a.assigned_at} for a in c.tag_assignments.all()]} for c in contacts]


def tags_held(contact_id: int) -> list[dict]:
    """The tags of one contact, in one query."""
    held = TagAssignment.objects.filter(contact_id=contact_id).select_related(
        "tag__dimension").order_by("tag__dimension__order", "tag__name")
    return [{"name": a.tag.name, "dimension": a.tag.dimension.name, "source": a.source,
             "added_at": a.assigned_at} for a in held]


def contact_out(contact: Contact) -> dict:
    return contacts_out(contacts_with_tags(Contact.objects.filter(pk=contact.pk)))[0]


contacts_router = Router(tags=["contacts"])


@contacts_router.get(
    "/contacts/{phone}/", auth=TokenAuth(ApiScope.CONTACTS_READ),
    response=responses({200: ContactOut}, 404, 422), summary="A contact with its tags",
    description="Scope `contacts:read`. `phone` in any writing: `+491701234567`, "
                "`+49 170 1234567`, `0049170…`, or national (`0170…`) in the default region.")
def contact_get(request: HttpRequest, phone: str):
    # One query for the contact, one for its tags: the lookup #18 asks to answer in 50 ms.
    number = phone_from_path(phone)
    found = contacts_out(contacts_with_tags(Contact.objects.filter(phone=number)))
    if not found:
        raise not_found(_("No contact has the number %(phone)s.") % {"phone": number}, "phone")
    return found[0]


@contacts_router.patch(
    "/contacts/{phone}/", auth=TokenAuth(ApiScope.CONTACTS_WRITE),
    response=responses({200: ContactOut}, 404, 409, 422), summary="Change a contact",
    description="Scope `contacts:write`. Changes exactly the fields given, all or none. "
                "Consent follows the rules of imports: an opted-out or blocklisted number is "
                "never opted in (409).")
def contact_patch(request: HttpRequest, phone: str, data: ContactWritable):
    return contact_out(contact_update(contact_by_phone(phone), data))


TagNames = Annotated[list[Annotated[Text, Field(max_length=120)]], Field(max_length=100)]


class TagChangeIn(Schema):
    model_config = ConfigDict(extra="forbid")

    add: TagNames = Field(default_factory=list, description="Tag names to add")
    remove: TagNames = Field(default_factory=list, description="Tag names to remove")


class TagChangeOut(Schema):
    operation: uuid.UUID = Field(description="The history's id for this change")
    added: int
    removed: int
    replaced: int = Field(description="Tags taken away by single-choice dimensions")
    changed: bool
    tags: list[TagHeld] = Field(description="The contact's tags after the change")


def tags_resolve(names: list[str], field: str) -> list[Tag]:
    tags, unknown = tags_by_name(names)
    if unknown:
        index = names.index(unknown[0])
        raise ApiError(422, "unknown_tag", _(
            "No tag is called “%(name)s”. GET /api/v1/tags/ lists them; a tag administrator "
            "creates new ones.") % {"name": unknown[0]}, f"{field}[{index}]")
    return tags


def tags_allowed_check(token: ApiToken, tags: Iterable[Tag], names: dict[int, str]) -> None:
    """403 naming the first dimension of ``tags`` that ``token`` may not change;
    ``names`` maps a tag id to the request field it came from."""
    for tag in tags:
        if not token.may_change_dimension(tag.dimension_id):
            allowed = ", ".join(dimension_names(token)) or _("none")
            raise ApiError(403, "dimension_not_allowed", _(
                "The token “%(token)s” may not change tags of the dimension “%(dimension)s” "
                "(tag “%(tag)s”). It may change: %(allowed)s.")
                % {"token": token.name, "dimension": tag.dimension.name, "tag": tag.name,
                   "allowed": allowed}, names.get(tag.pk))


def api_source_ref(token: ApiToken) -> str:
    """The history's reference for a change made with ``token``: shown as “API: <name>”."""
    return f"api:{token.name}"[:100]


@contacts_router.post(
    "/contacts/{phone}/tags/", auth=TokenAuth(ApiScope.TAGS_WRITE),
    response=responses({200: TagChangeOut}, 404, 422), summary="Add and remove tags",
    description="Scope `tags:write`, and only tags of the dimensions the token names (403 "
                "naming the dimension). One step: a tag of a single-choice dimension replaces "
                "its rival; repeating the call changes nothing more. The history records "
                "source `api` with the token's name.")
def contact_tags_change(request: HttpRequest, phone: str, data: TagChangeIn):
    if not data.add and not data.remove:
        raise ApiError(422, "invalid", _("Name at least one tag to add or remove."), "add")
    contact = contact_by_phone(phone, Contact.objects.only("pk", "phone"))
    add, remove = tags_resolve(data.add, "add"), tags_resolve(data.remove, "remove")
    fields = {t.pk: f"remove[{i}]" for i, t in enumerate(remove)}
    fields.update({t.pk: f"add[{i}]" for i, t in enumerate(add)})
    tags_allowed_check(request.auth, [*add, *remove], fields)
    try:
        result = tags_change(contacts=[contact.pk], add=add, remove=remove, actor=None,
                             source=Source.API, source_ref=api_source_ref(request.auth))
    except TagChangeError as exc:
        raise ApiError(422, "tag_change_refused", str(exc), "add") from None
    return {"operation": result.operation, "added": result.added, "removed": result.removed,
            "replaced": result.replaced, "changed": result.changed,
            "tags": tags_held(contact.pk)}


# --- the vocabulary ---------------------------------------------------------------------------

vocabulary_router = Router(tags=["vocabulary"])


class DimensionOut(Schema):
    id: int
    name: str
    colour: str
    description: str
    order: int
    single_choice: bool
    archived: bool = Field(validation_alias="is_archived")


class DimensionPage(Schema):
    items: list[DimensionOut]
    next_cursor: str | None


class VocabularyWrite(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[Text, Field(max_length=1000)] = Field(
        "", description="Why; required to rename, archive or confirm a near-twin")
    confirm_near_twin: bool = Field(
        False, description="Keep a name close to an existing one (give a reason)")


class DimensionPatch(VocabularyWrite):
    name: Annotated[Text, Field(min_length=1, max_length=80)] | None = None
    colour: Annotated[Text, Field(pattern=r"^#[0-9A-Fa-f]{6}$")] | None = None
    description: Annotated[Text, Field(max_length=2000)] | None = None
    order: Annotated[int, Field(ge=0, le=32767)] | None = None
    single_choice: bool | None = None
    archived: bool | None = None


class DimensionCreate(DimensionPatch):
    name: Annotated[Text, Field(min_length=1, max_length=80)]


class TagOut(Schema):
    id: int
    name: str
    dimension: str = Field(validation_alias="dimension.name")
    dimension_id: int
    colour: str = Field(validation_alias="display_colour")
    symbol: str
    description: str
    kind: str = Field(description="static or dynamic")
    lifetime_days: int | None
    archived: bool = Field(validation_alias="is_archived")


class TagPage(Schema):
    items: list[TagOut]
    next_cursor: str | None


class TagPatch(VocabularyWrite):
    name: Annotated[Text, Field(min_length=1, max_length=120)] | None = None
    dimension: Annotated[Text, Field(max_length=80)] | None = Field(
        None, description="The dimension's name")
    colour: Annotated[Text, Field(pattern=r"^(#[0-9A-Fa-f]{6})?$")] | None = None
    symbol: Annotated[Text, Field(max_length=8)] | None = None
    description: Annotated[Text, Field(max_length=2000)] | None = None
    kind: TagKind | None = None
    lifetime_days: Annotated[int, Field(ge=1, le=36500)] | None = None
    archived: bool | None = None


class TagCreate(TagPatch):
    name: Annotated[Text, Field(min_length=1, max_length=120)]
    dimension: Annotated[Text, Field(max_length=80)] = Field(description="The dimension's name")


def _vocabulary_error(exc: VocabularyError) -> ApiError:
    if isinstance(exc, NearTwinWarning):
        return ApiError(409, "near_twin", str(exc), "name")
    return ApiError(422, "vocabulary_rule", str(exc), exc.field)


def _reason(token: ApiToken, reason: str) -> str:
    """The version log's reason, naming the token; empty stays empty (so that the rules
    asking for a reason still ask)."""
    return f"{reason.strip()} (API: {token.name})" if reason.strip() else ""


class Listing(Schema):
    cursor: str | None = None
    limit: int | None = Field(None, description="Items per page (default 100)")
    include_archived: bool = False


@vocabulary_router.get("/dimensions/", auth=TokenAuth(),
                       response=responses({200: DimensionPage}, 400, 422), summary="Dimensions",
                       description="Any valid token. In id order.")
def dimensions_list(request: HttpRequest, query: Query[Listing]):
    dimensions = Dimension.objects.all()
    if not query.include_archived:
        dimensions = dimensions.filter(is_archived=False)
    return page_of(dimensions, cursor=query.cursor, limit=query.limit)


def _dimension(pk: int) -> Dimension:
    dimension = Dimension.objects.filter(pk=pk).first()
    if dimension is None:
        raise not_found(_("There is no dimension %(id)d.") % {"id": pk}, "id")
    return dimension


@vocabulary_router.get("/dimensions/{id}/", auth=TokenAuth(),
                       response=responses({200: DimensionOut}, 404), summary="A dimension",
                       description="Any valid token.")
def dimension_get(request: HttpRequest, id: int):
    return _dimension(id)


def _dimension_write(request, dimension: Dimension, data: DimensionPatch, *, created: bool):
    values = data.model_dump(exclude_unset=True)
    archived = values.pop("archived", None)
    reason = _reason(request.auth, values.pop("reason", ""))
    confirm = values.pop("confirm_near_twin", False)
    for name, value in values.items():
        setattr(dimension, name, value if value is not None else "")
    try:
        with transaction.atomic():  # an edit and an archive: both or neither
            dimension_save(dimension=dimension, actor=None, reason=reason,
                           near_twins_confirmed=confirm)
            if archived is True:
                dimension_archive(dimension=dimension, actor=None, reason=reason)
            elif archived is False and not created:
                dimension_restore(dimension=dimension, actor=None, reason=reason)
    except VocabularyError as exc:
        raise _vocabulary_error(exc) from None
    dimension.refresh_from_db()
    return dimension


@vocabulary_router.post("/dimensions/", auth=TokenAuth(ApiScope.TAGS_ADMIN),
                        response=responses({201: DimensionOut}, 409, 422),
                        summary="Create a dimension",
                        description="Scope `tags:admin`. The vocabulary's rules apply: a name "
                                    "unique once case and accents are ignored; a near-twin "
                                    "needs `confirm_near_twin` and a reason (409 otherwise).")
def dimension_create(request: HttpRequest, data: DimensionCreate):
    return Status(201, _dimension_write(request, Dimension(), data, created=True))


@vocabulary_router.patch("/dimensions/{id}/", auth=TokenAuth(ApiScope.TAGS_ADMIN),
                         response=responses({200: DimensionOut}, 404, 409, 422),
                         summary="Change a dimension",
                         description="Scope `tags:admin`. A rename or `archived` needs a reason.")
def dimension_patch(request: HttpRequest, id: int, data: DimensionPatch):
    return _dimension_write(request, _dimension(id), data, created=False)


class TagListing(Listing):
    dimension: str | None = Field(None, description="Only tags of this dimension (by name)")


@vocabulary_router.get("/tags/", auth=TokenAuth(), response=responses({200: TagPage}, 400, 422),
                       summary="Tags", description="Any valid token. In id order.")
def tags_list(request: HttpRequest, query: Query[TagListing]):
    tags = Tag.objects.select_related("dimension")
    if not query.include_archived:
        tags = tags.filter(is_archived=False)
    if query.dimension:
        tags = tags.filter(dimension=_dimension_named(query.dimension, "dimension"))
    return page_of(tags, cursor=query.cursor, limit=query.limit)


def _dimension_named(name: str, field: str) -> Dimension:
    dimension = Dimension.objects.filter(name_key=name_key(name)).first()
    if dimension is None:
        raise ApiError(422, "unknown_dimension", _(
            "No dimension is called “%(name)s”; GET /api/v1/dimensions/ lists them.")
            % {"name": name}, field)
    return dimension


def _tag(pk: int) -> Tag:
    tag = Tag.objects.select_related("dimension").filter(pk=pk).first()
    if tag is None:
        raise not_found(_("There is no tag %(id)d.") % {"id": pk}, "id")
    return tag


@vocabulary_router.get("/tags/{id}/", auth=TokenAuth(), response=responses({200: TagOut}, 404),
                       summary="A tag", description="Any valid token.")
def tag_get(request: HttpRequest, id: int):
    return _tag(id)


def _tag_write(request, tag: Tag, data: TagPatch, *, created: bool) -> Tag:
    values = data.model_dump(exclude_unset=True)
    archived = values.pop("archived", None)
    reason = _reason(request.auth, values.pop("reason", ""))
    confirm = values.pop("confirm_near_twin", False)
    if "dimension" in values:
        tag.dimension = _dimension_named(values.pop("dimension"), "dimension")
    for name, value in values.items():
        setattr(tag, name, value if value is not None or name == "lifetime_days" else "")
    try:
        with transaction.atomic():  # an edit and an archive: both or neither
            tag_save(tag=tag, actor=None, reason=reason, near_twins_confirmed=confirm)
            if archived is True:
                tag_archive(tag=tag, actor=None, reason=reason)
            elif archived is False and not created:
                tag_restore(tag=tag, actor=None, reason=reason)
    except VocabularyError as exc:
        raise _vocabulary_error(exc) from None
    return _tag(tag.pk)


@vocabulary_router.post("/tags/", auth=TokenAuth(ApiScope.TAGS_ADMIN),
                        response=responses({201: TagOut}, 409, 422), summary="Create a tag",
                        description="Scope `tags:admin`. As for dimensions: unique names, "
                                    "near-twins confirmed with a reason.")
def tag_create(request: HttpRequest, data: TagCreate):
    return Status(201, _tag_write(request, Tag(), data, created=True))


@vocabulary_router.patch("/tags/{id}/", auth=TokenAuth(ApiScope.TAGS_ADMIN),
                         response=responses({200: TagOut}, 404, 409, 422), summary="Change a tag",
                         description="Scope `tags:admin`. A rename, a move or `archived` needs "
                                     "a reason.")
def tag_patch(request: HttpRequest, id: int, data: TagPatch):
    return _tag_write(request, _tag(id), data, created=False)
