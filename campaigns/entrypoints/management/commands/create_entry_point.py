"""``create_entry_point``: an entry point, its QR code file, and (last line) its link."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from campaigns.entrypoints.services import (
    EntryPointError,
    business_number,
    entry_point_create,
    entry_point_link,
    qr_png,
    qr_svg,
)
from tagging.selectors import tags_by_name


class Command(BaseCommand):
    help = ("Create an entry point (a QR code or link customers start a WhatsApp chat from) and "
            "print its click-to-chat link as the last line.")

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="e.g. “Messe Köln 2026”")
        parser.add_argument("--tag", action="append", default=[], dest="tags",
                            help="A tag given to everybody who arrives (repeat for more); "
                                 "it must exist.")
        parser.add_argument("--code", default="", help="e.g. MESSE26; empty: one is made up")
        parser.add_argument("--text", default="", help="The prefilled message")
        parser.add_argument("--consent", action="store_true",
                            help="Writing counts as marketing opt-in (needs --consent-text).")
        parser.add_argument("--consent-text", default="",
                            help="The consent statement the customer sees.")
        parser.add_argument("--png", default="", help="Write the QR code as PNG to this path.")
        parser.add_argument("--svg", default="", help="Write the QR code as SVG to this path.")

    def handle(self, *args, **options):
        tags, unknown = tags_by_name(options["tags"])
        if unknown:
            raise CommandError("Unknown tag(s): " + ", ".join(unknown)
                               + ". Create them in the admin first (Tags), then run again.")
        try:
            business_number()  # no entry point without a link to print
            entry_point = entry_point_create(
                name=options["name"], tags=tags, code=options["code"], text=options["text"],
                consent=options["consent"], consent_text=options["consent_text"])
            link = entry_point_link(entry_point)
        except (EntryPointError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        if options["png"]:
            Path(options["png"]).write_bytes(qr_png(entry_point))
            self.stdout.write(f"QR code (PNG): {options['png']}")
        if options["svg"]:
            Path(options["svg"]).write_text(qr_svg(entry_point), encoding="utf-8")
            self.stdout.write(f"QR code (SVG): {options['svg']}")
        self.stdout.write(f"Entry point “{entry_point.name}”, code {entry_point.code}")
        self.stdout.write(link)
