import json

from django.core.management.base import BaseCommand, CommandError

from crm.privacy import ErasureError, contact_by_phone, contact_erase


class Command(BaseCommand):
    help = ("Erase one contact on request (GDPR Art. 17): every row naming it or its number "
            "is deleted or anonymised, only a salted hash of the number stays so it is never "
            "messaged or imported again, and an audit record says when and why "
            "(docs/privacy.md). Safe to re-run: an erased number is no longer found.")

    def add_arguments(self, parser):
        parser.add_argument("phone", help="The contact's number in any writing.")
        parser.add_argument("--reason", default="", help="Why, e.g. “e-mail of 3 May”.")
        parser.add_argument("--json", action="store_true",
                            help="Print what was removed as JSON.")

    def handle(self, *args, phone: str, reason: str, json: bool, **options):
        try:
            contact = contact_by_phone(phone)
            erasure = contact_erase(contact=contact, via="command", reason=reason)
        except ErasureError as exc:
            raise CommandError(str(exc)) from None
        if json:
            self.stdout.write(_dumps({"erasure": erasure.pk, "removed": erasure.removed}))
            return
        self.stdout.write(f"Contact {contact.pk} erased (audit record {erasure.pk}); rows "
                          f"removed or anonymised: {sum(erasure.removed.values())}.")


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
