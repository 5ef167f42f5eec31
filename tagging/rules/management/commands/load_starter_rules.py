import json

from django.core.management.base import BaseCommand

from tagging.rules.starter import rules_load_starter


class Command(BaseCommand):
    help = ("Create the starter rules of the source documents (PRODUCT.md §6) with the demo's "
            "German tag names. Safe to run again: existing starter rules, even edited, are "
            "left as they are.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, json: bool = False, **options):
        created, existing = rules_load_starter()
        if json:
            self.stdout.write(_dumps({"created": created, "existing": existing}))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Starter rules: {created} created, {existing} already there."))


def _dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True)
