import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from crm.events_import import COLUMNS, EventsImportError, events_import


class Command(BaseCommand):
    help = (f"Import historical events from a UTF-8 CSV with the columns {','.join(COLUMNS)}. "
            "Safe to run again: rows whose source_id is already stored are skipped.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="The CSV file.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, path: str, json: bool = False, **options):
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            with file.open(encoding="utf-8-sig", newline="") as stream:
                report = events_import(stream=stream)
        except EventsImportError as exc:
            raise CommandError(str(exc)) from None
        if json:
            self.stdout.write(_dumps(report.as_dict()))
            return
        self.stdout.write(
            f"{report.rows} rows: {report.stored} events stored, {report.duplicates} "
            f"duplicates skipped, {report.failed} failed, {report.contacts_created} new contacts."
        )
        for reason, count in report.failures.most_common():
            self.stdout.write(f"  {reason}: {count}")
            for example in report.examples.get(reason, []):
                self.stdout.write(f"    {example}")
        if report.too_many_failures:
            self.stdout.write(self.style.WARNING(
                "More than 10% of the rows failed: fix the source file and import it again "
                "(rows already stored are skipped)."))


def _dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)
