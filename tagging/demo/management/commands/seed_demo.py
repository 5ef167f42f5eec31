import json
import time

from django.core.management.base import BaseCommand, CommandError

from crm.models import Contact
from tagging.demo.contacts import seed_demo
from tagging.demo.history import demo_history_spread
from tagging.rules.starter import rules_load_starter
from tagging.rules.starter_vocabulary import LANGUAGES


class Command(BaseCommand):
    help = ("Load demo contacts with the source documents' tag vocabulary. Deterministic for a "
            "seed and safe to run again: nothing is duplicated.")

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=10_000, help="How many (10,000).")
        parser.add_argument("--seed", type=int, default=42, help="Random seed (42).")
        parser.add_argument("--if-empty", action="store_true",
                            help="Do nothing when the database already has contacts.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument("--language", choices=LANGUAGES, default="de",
                            help="The vocabulary's language: de (the German source article, "
                                 "default) or zh-hans (the Chinese articles).")
        parser.add_argument("--no-history", action="store_true",
                            help="Leave every tag applied now instead of spreading the demo's "
                                 "tag history over the past 16 weeks.")

    def handle(self, *args, contacts, seed, if_empty, json: bool = False, language: str = "de",
               no_history: bool = False, **options):
        if contacts < 0:
            raise CommandError("--contacts must be 0 or more.")
        if if_empty and Contact.objects.exists():
            self.stdout.write("Demo data already loaded; skipping.")
            return
        started = time.monotonic()
        result = seed_demo(contacts=contacts, seed=seed, language=language)
        rules_load_starter(language=language)  # so that the demo's tags have rules
        if not no_history:
            # Trends (churn, holders over time) need weeks of history, not one moment.
            demo_history_spread(seed=seed)
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
