"""django-import-export's way of importing contacts: the imports benchmark's baseline.

``ContactResource`` is the library's default ``ModelResource`` import with a
many-to-many tags widget. It normalises the phone like the fast path, but
writes row by row and sets tags with the ORM (no history, no permissions): a
measure to compare ``tagging.imports.services`` with, never used by the app.
"""

from __future__ import annotations

from import_export import fields, resources, widgets

from crm.models import Contact
from crm.phones import normalize_phone
from tagging.models import Tag


class ContactResource(resources.ModelResource):
    tags = fields.Field(attribute="tags", column_name="tags",
                        widget=widgets.ManyToManyWidget(Tag, field="name", separator=","))

    class Meta:
        model = Contact
        import_id_fields = ["phone"]
        fields = ["phone", "first_name", "last_name", "city", "tags"]

    def before_import_row(self, row, **kwargs):
        row["phone"] = normalize_phone(row["phone"])
