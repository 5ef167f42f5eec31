import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from crm.privacy import ErasureError, contact_by_phone, contact_export


class Command(BaseCommand):
    help = ("Write everything Tagwerk holds about one contact (profile, consent, tags and "
            "their history, events, messages with statuses, replies, imports, entry points) "
            "to a JSON file: the answer to a data subject access request (docs/privacy.md).")

    def add_arguments(self, parser):
        parser.add_argument("phone", help="The contact's number in any writing, e.g. "
                                          "+49 170 1234567 or 0170-1234567.")
        parser.add_argument("path", help="The JSON file to write; - for standard output.")

    def handle(self, *args, phone: str, path: str, **options):
        try:
            contact = contact_by_phone(phone)
        except ErasureError as exc:
            raise CommandError(str(exc)) from None
        text = json.dumps(contact_export(contact), ensure_ascii=False, indent=2)
        if path == "-":
            self.stdout.write(text)
            return
        Path(path).write_text(text + "\n", encoding="utf-8")
        self.stdout.write(f"Wrote the data of contact {contact.pk} to {path}.")
