from django.core.management.base import BaseCommand, CommandError

from crm.models import Contact
from tagging.audiences.language import SegmentError
from tagging.audiences.selectors import contacts_matching
from tagging.imports.exports import contacts_export


class Command(BaseCommand):
    help = ("Export contacts (all, or those matching a segment expression) to CSV or XLSX "
            "with one column per dimension; the file reads back through import_contacts.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--where", default="",
                            help="""A segment expression, e.g. '"VIP" AND NOT "Kunde"'.""")
        parser.add_argument("--format", choices=["csv", "xlsx"], default=None,
                            help="Default: from the file name, else csv.")

    def handle(self, *args, path, where, format, **opts):
        fmt = format or ("xlsx" if path.lower().endswith(".xlsx") else "csv")
        try:
            queryset = contacts_matching(where) if where.strip() else Contact.objects.all()
        except SegmentError as exc:
            raise CommandError(f"The expression is wrong: {exc}") from None
        if fmt == "csv":
            with open(path, "w", newline="", encoding="utf-8") as out:
                count = contacts_export(queryset=queryset, out=out, fmt="csv")
        else:
            with open(path, "wb") as out:
                count = contacts_export(queryset=queryset, out=out, fmt="xlsx")
        self.stdout.write(f"{count} contacts exported to {path}.")
