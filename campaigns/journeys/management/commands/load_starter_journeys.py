import json

from django.core.management.base import BaseCommand

from campaigns.journeys.starter import journeys_load_starter


class Command(BaseCommand):
    help = ("Create the starter journeys of the source documents (welcome, win-back, "
            "reactivation, birthday), switched off, with pending templates. Safe to run "
            "again: existing starter journeys, even edited, are left as they are.")

    def add_arguments(self, parser):
        parser.add_argument("--language", default="de", choices=["de", "zh-hans"],
                            help="The vocabulary to name tags in (as load_starter_rules).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, language: str = "de", json: bool = False, **options):
        created, existing = journeys_load_starter(language=language)
        if json:
            self.stdout.write(_dumps({"created": created, "existing": existing}))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Starter journeys: {created} created, {existing} already there. They are "
            "switched off: approve their templates, then switch them on in the admin."))


def _dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True)
