import json
import time

from django.core.management.base import BaseCommand, CommandError

from crm.models import Contact
from tagging.demo.contacts import seed_demo
from tagging.rules.starter import rules_load_starter


class Command(BaseCommand):
    help = ("Load demo contacts with the source documents' tag vocabulary. Deterministic for a "
            "seed and safe to run again: nothing is duplicated.")

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=10_000, help="How many (10,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--if-empty", action="store_true",
                            help="Do nothing when the database already has contacts.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, contacts, seed, if_empty, json: bool = False, **options):
        if contacts < 0:
            raise CommandError("--contacts must be 0 or more.")
        if if_empty and Contact.objects.exists():
            self.stdout.write("Demo data already loaded; skipping.")
            return
        started = time.monotonic()
        result = seed_demo(contacts=contacts, seed=seed)
        rules_load_starter()  # so that the demo's tags have rules that keep them
        seconds = time.monotonic() - started
        if json:
            self.stdout.write(_json({**result.__dict__, "seconds": round(seconds, 2)}))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Demo data: {result.contacts_created} contacts created "
            f"({result.contacts_total} in all), {result.tags_added} tags applied "
            f"in {seconds:.1f} s."
        ))


def _json(data: dict) -> str:
    return json.dumps(data, sort_keys=True)
