"""python manage.py audience "EXPR" [--count] [--csv PATH]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from crm.csvsafe import SafeWriter
from tagging.audiences.language import SegmentError
from tagging.audiences.selectors import contacts_matching

COLUMNS = ["id", "phone", "first_name", "last_name", "country", "language", "consent_status"]


class Command(BaseCommand):
    help = ("Show the contacts matching a segment expression: the count, the first rows, or "
            "all of them as CSV. See docs/audiences.md for the language.")

    def add_arguments(self, parser):
        parser.add_argument("expression", help='e.g. \'"VIP" AND last_interaction within 30d\'')
        parser.add_argument("--count", action="store_true", help="Print only the number.")
        parser.add_argument("--csv", metavar="PATH", help="Write all matching contacts here.")
        parser.add_argument("--limit", type=int, default=20,
                            help="Rows to print without --csv (default 20).")

    def handle(self, *args, expression: str, count: bool, csv: str | None, limit: int,
               **options):
        try:
            contacts = contacts_matching(expression).order_by("pk")
            total = contacts.count()
        except SegmentError as error:
            raise CommandError(str(error)) from None
        if count:
            self.stdout.write(str(total))
            return
        if csv:
            written = _write_csv(csv, contacts)
            self.stdout.write(f"{written} contacts written to {csv}")
            return
        self.stdout.write(f"{total} contacts match")
        for row in contacts.values_list(*COLUMNS)[:limit]:
            self.stdout.write("  " + "  ".join(str(v) for v in row))


def _write_csv(path: str, contacts) -> int:
    written = 0
    try:
        handle = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise CommandError(f"Cannot write {path}: {error.strerror}") from None
    with handle:
        writer = SafeWriter(handle)
        writer.writerow(COLUMNS)
        for row in contacts.values_list(*COLUMNS).iterator(chunk_size=5000):
            writer.writerow(row)
            written += 1
    return written
