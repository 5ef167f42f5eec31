"""django-import-export's way, for the small screens and as the benchmark baseline.

``ContactResource`` is the library's default ``ModelResource`` import with a
many-to-many tags widget. It normalises the phone like the fast path, but
writes row by row and sets tags with the ORM (no history, no permissions), so
``tagging.imports.services`` is what the admin uses for real imports.
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
