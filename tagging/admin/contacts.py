"""Tags in the contact admin: chips in the list, and the agent's profile panel.

The panel shows the contact's tags as chips grouped by dimension, adds with
autocomplete and removes with a click. Two small JSON endpoints under the
contact's admin URL serve it; both go through ``tags_change``, so rights,
single-choice replacement and history are the same as everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, JsonResponse
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from crm.admin import ContactAdminPart
from crm.models import Contact
from crm.timeline import Cursor, Entry, timeline_sources
from tagging.models import AssignmentHistory, HistoryAction, Source, Tag, TagAssignment
from tagging.names import name_key
from tagging.permissions import applicable_dimension_ids
from tagging.selectors import contacts_with_tags
from tagging.services import TagChangeError, tags_change

SEARCH_LIMIT = 20


@dataclass
class Chip:
    assignment: TagAssignment
    removable: bool
    origin: str

    @property
    def tag(self) -> Tag:
        return self.assignment.tag


# Apps turn their source references into names for people, e.g. the rules app:
# register_source_ref_label("rule", lambda pk: Rule.objects.filter(pk=pk)
#                                             .values_list("name", flat=True).first())
_REF_LABELS: dict[str, Callable[[str], str | None]] = {}


def register_source_ref_label(prefix: str, label: Callable[[str], str | None]) -> None:
    """Show ``"<prefix>:<id>"`` source references as ``label(id)`` on the contact page."""
    _REF_LABELS[prefix] = label


def _ref_label(source: str, ref: str) -> str:
    prefix, sep, rest = ref.partition(":")
    if sep and prefix in _REF_LABELS:
        return _REF_LABELS[prefix](rest) or ref
    return rest if sep and prefix == source and rest else ref


def assignment_origin(assignment: TagAssignment, now=None) -> str:
    """Where a tag came from, for people: “rule: High-value customer, 3 days ago”."""
    label = Source(assignment.source).label if assignment.source in Source.values \
        else assignment.source
    detail = _ref_label(assignment.source, assignment.source_ref) or (
        assignment.actor.get_username() if assignment.actor_id else "")
    ago = timesince(assignment.assigned_at, now or timezone.now(), depth=1)
    origin = f"{label}: {detail}" if detail else str(label)
    text = _("%(origin)s, %(ago)s ago") % {"origin": origin, "ago": ago}
    if assignment.expires_at:
        text += " · " + _("expires %(date)s") % {
            "date": timezone.localtime(assignment.expires_at).strftime("%Y-%m-%d")}
    return text


def chip(tag: Tag) -> str:
    """A tag as a coloured chip: dimension colour, symbol, name."""
    return format_html(
        '<span class="tw-chip" style="--tw-colour:{}" title="{}">{}{}</span>',
        tag.display_colour,
        tag.dimension.name,
        f"{tag.symbol} " if tag.symbol else "",
        tag.name,
    )


def chips(tags) -> str:
    return format_html_join("", "{}", ((chip(t),) for t in tags))


class TagsContactPart(ContactAdminPart):
    """Chips in the contacts list; the interactive tag panel on the contact page."""

    change_form_includes = ["tagging/admin/contact_tag_profile.html"]

    def queryset(self, request, queryset):
        return contacts_with_tags(queryset)

    def list_display(self, request, columns: list) -> list:
        at = columns.index("display_name") + 1 if "display_name" in columns else len(columns)
        return [*columns[:at], self.tag_chips, *columns[at:]]

    @staticmethod
    @admin.display(description=gettext_lazy("tags"))
    def tag_chips(obj: Contact) -> str:
        return chips(a.tag for a in obj.tag_assignments.all())

    def urls(self, model_admin) -> list:
        info = f"{model_admin.opts.app_label}_{model_admin.opts.model_name}"

        def view(handler, method):
            return model_admin.admin_site.admin_view(
                method(lambda request, object_id: handler(model_admin, request, object_id)))

        return [
            path("<path:object_id>/tags/search/", view(self.tag_search, require_GET),
                 name=f"{info}_tag_search"),
            path("<path:object_id>/tags/change/", view(self.tag_change, require_POST),
                 name=f"{info}_tag_change"),
        ]

    def change_form_context(self, request, model_admin, obj: Contact) -> dict:
        name = model_admin.admin_site.name
        return {
            "tag_panel": tag_panel_html(request, model_admin, obj),
            "tag_search_url": reverse("admin:crm_contact_tag_search", args=[obj.pk],
                                      current_app=name),
            "tag_change_url": reverse("admin:crm_contact_tag_change", args=[obj.pk],
                                      current_app=name),
        }

    # --- endpoints ------------------------------------------------------------

    @staticmethod
    def _contact(model_admin, request, object_id) -> Contact | None:
        contact = model_admin.get_object(request, unquote(object_id))
        if contact is None or not model_admin.has_view_permission(request, contact):
            return None
        return contact

    @staticmethod
    def _refused() -> JsonResponse:
        return JsonResponse({"error": _("You may not see or change this contact.")}, status=403)

    def tag_search(self, model_admin, request: HttpRequest, object_id: str):
        """Tags the user may apply to this contact, matching ``q`` (JSON)."""
        contact = self._contact(model_admin, request, object_id)
        if contact is None:
            return self._refused()
        query = request.GET.get("q", "").strip()
        tags = Tag.objects.filter(is_archived=False).select_related("dimension").exclude(
            assignments__contact=contact)
        allowed = applicable_dimension_ids(request.user)
        found = tags
        if query:
            found = found.filter(Q(name__icontains=query) | Q(name_key__contains=name_key(query)))
        hint = ""
        if allowed is not None and query:
            # Say why a tag the user typed is missing, instead of an empty list.
            outside = found.exclude(dimension_id__in=allowed).first()
            if outside is not None:
                hint = _("“%(tag)s” belongs to “%(dimension)s”, which you may not apply. Ask a "
                         "tag administrator to grant you that dimension.") % {
                    "tag": outside.name, "dimension": outside.dimension.name}
        if allowed is not None:
            found = found.filter(dimension_id__in=allowed)
        found = found.order_by("dimension__order", "dimension__name", "name")[:SEARCH_LIMIT]
        return JsonResponse({"hint": hint, "results": [
            {"id": t.pk, "name": t.name, "symbol": t.symbol, "colour": t.display_colour,
             "dimension": t.dimension.name, "single_choice": t.dimension.single_choice}
            for t in found
        ]})

    def tag_change(self, model_admin, request: HttpRequest, object_id: str):
        """POST ``op=add|remove`` and ``tag=<id>``; answers the new panel or a clear refusal."""
        contact = self._contact(model_admin, request, object_id)
        if contact is None or not model_admin.has_change_permission(request, contact):
            return self._refused()
        op = request.POST.get("op")
        tag = Tag.objects.select_related("dimension").filter(
            pk=request.POST.get("tag") if str(request.POST.get("tag", "")).isdigit() else None
        ).first()
        if op not in ("add", "remove") or tag is None:
            return JsonResponse({"error": _("Choose a tag to add or remove.")}, status=400)
        try:
            result = tags_change(contacts=[contact], actor=request.user, source=Source.MANUAL,
                                 **({"add": [tag]} if op == "add" else {"remove": [tag]}))
        except PermissionDenied as exc:
            return JsonResponse({"error": str(exc)}, status=403)
        except TagChangeError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        if op == "add":
            message = _("“%(tag)s” added.") % {"tag": tag.name}
            if result.replaced:
                message += " " + _("It replaced the other tag of “%(dimension)s”.") % {
                    "dimension": tag.dimension.name}
        else:
            message = _("“%(tag)s” removed.") % {"tag": tag.name}
        return JsonResponse({"message": message,
                             "html": tag_panel_html(request, model_admin, contact),
                             "added": result.added, "removed": result.removed,
                             "replaced": result.replaced})


def tag_panel_html(request: HttpRequest, model_admin, contact: Contact) -> str:
    allowed = applicable_dimension_ids(request.user)
    may_change = model_admin.has_change_permission(request, contact)
    assignments = (
        TagAssignment.objects.filter(contact=contact)
        .select_related("tag__dimension", "actor")
        .order_by("tag__dimension__order", "tag__dimension__name", "tag__name")
    )
    now = timezone.now()
    groups = [
        (dimension, [
            Chip(a, may_change and (allowed is None or dimension.pk in allowed),
                 assignment_origin(a, now))
            for a in items
        ])
        for dimension, items in groupby(assignments, key=lambda a: a.tag.dimension)
    ]
    history = (AssignmentHistory.objects.filter(contact=contact)
               .select_related("tag", "actor")[:10])
    return render_to_string("tagging/admin/contact_tag_panel.html", {
        "groups": groups,
        "history": history,
        "can_add": may_change and (allowed is None or bool(allowed)),
    }, request=request)


def history_source(row: AssignmentHistory) -> str:
    """Where a logged tag change came from, for people: “rule: High-value customer”."""
    label = Source(row.reason).label if row.reason in Source.values else row.reason
    detail = _ref_label(row.reason, row.source_ref) if row.source_ref else ""
    if not detail and row.actor_id:
        detail = row.actor.get_username()
    return f"{label}: {detail}" if detail else str(label)


def tag_changes_timeline(contact: Contact, before: Cursor | None, limit: int) -> list[Entry]:
    """The contact's tag changes for the timeline (index tagging_hist_contact_at)."""
    rows = AssignmentHistory.objects.filter(contact=contact).select_related("tag", "actor")
    if before is not None:
        rows = rows.filter(before.q("tag", "at"))
    entries = []
    for row in rows.order_by("-at", "-id")[:limit]:
        name = row.tag.name if row.tag_id else "?"
        title = (_("Tag “%(tag)s” added") if row.action == HistoryAction.ADDED
                 else _("Tag “%(tag)s” removed")) % {"tag": name}
        if row.replaced:
            title += " " + _("(replaced by another tag of its dimension)")
        entries.append(Entry(row.at, "tag", title, history_source(row), id=row.pk))
    return entries


timeline_sources.register("tags", tag_changes_timeline)
