import json

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign
from campaigns.selectors import campaign_report


class Command(BaseCommand):
    help = "Print a campaign's report (sent, delivered, read, replied, failed by code …)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--json", action="store_true", help="Machine-readable output")

    def handle(self, *args, **options):
        campaign = Campaign.objects.filter(name=options["name"]).first()
        if campaign is None:
            raise CommandError(f"No campaign named “{options['name']}”.")
        report = campaign_report(campaign)
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2, default=str))
            return
        pct = lambda v: "–" if v is None else f"{v:.1%}"  # noqa: E731
        self.stdout.write(f"{campaign} ({report['status']}) {report['status_message']}".strip())
        self.stdout.write(f"  recipients {report['recipients']}  sent {report['sent']}  "
                          f"delivered {report['delivered']} ({pct(report['delivery_rate'])})  "
                          f"read {report['read']} ({pct(report['read_rate'])})  "
                          f"replied {report['replied']} ({pct(report['reply_rate'])})  "
                          f"clicked {report['clicked']} ({pct(report['click_rate'])})")
        self.stdout.write(f"  failed {report['failed'] or 0}  excluded {report['excluded']}  "
                          f"conversions {report['conversions']}  revenue {report['revenue']}")
        for note in report["flags"]:
            self.stdout.write(f"  ! {note}")
        if "ab" in report:
            self.stdout.write(f"  A/B: {report['ab']['note']}")
