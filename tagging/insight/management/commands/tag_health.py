import json

from django.core.management.base import BaseCommand, CommandError

from tagging.insight.models import ReportTrigger
from tagging.insight.selectors import FINDING_KEYS, report_headline
from tagging.insight.services import health_report_create, health_report_send


class Command(BaseCommand):
    help = ("Compute the tag health report now, store it in the report history and print it. "
            "Safe to re-run: each run adds one dated report and changes nothing else.")

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true",
                            help="Print the findings as JSON (keys: " + ", ".join(FINDING_KEYS)
                                 + ", …).")
        parser.add_argument("--mail", metavar="ADDRESS", action="append", default=[],
                            help="Also mail the report to ADDRESS (repeatable).")

    def handle(self, *args, json: bool = False, mail: list[str], **options):
        bad = [a for a in mail if "@" not in a]
        if bad:
            raise CommandError(f"Not an e-mail address: {', '.join(bad)}.")
        report = health_report_create(trigger=ReportTrigger.COMMAND)
        if mail:
            health_report_send(report=report, recipients=mail)
        if json:
            self.stdout.write(_dumps({"report_id": report.pk, **report.findings}))
            return
        self.stdout.write(self.style.SUCCESS(f"Tag health report #{report.pk} "
                                             f"({report.duration_ms} ms):"))
        for line in report_headline(report.summary):
            self.stdout.write(f"  - {line}")
        f = report.findings
        for title, names in [
            ("Inactive (archive?)", [t["name"] for t in f["inactive"]]),
            ("Overloaded (split?)", [f"{t['name']} {t['share']:.0%}" for t in f["overloaded"]]),
            ("Near-twins (merge?)", [" ≈ ".join(t["tags"]) for t in f["near_twins"]]),
            ("Without holders", [t["name"] for t in f["orphans"]]),
            ("Sleeping VIPs", [f"{t['name']}: {t['sleeping']}" for t in
                               f["sleeping_vips"]["tags"]]),
        ]:
            self.stdout.write(f"{title}: {', '.join(names) or '—'}")


def _dumps(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)
