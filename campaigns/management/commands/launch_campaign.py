import time

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign, CampaignStatus
from campaigns.services import LaunchBlocked, campaign_checks, campaign_launch
from campaigns.tasks import campaign_send_task
from campaigns.tick import campaigns_tick

FINAL = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.ABORTED}


class Command(BaseCommand):
    help = ("Check and launch a campaign. With --wait, return when it has finished sending "
            "(sending runs on the Celery workers; beat must be running).")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=0, help="Give up after seconds")

    def handle(self, *args, **options):
        campaign = Campaign.objects.filter(name=options["name"]).first()
        if campaign is None:
            raise CommandError(f"No campaign named “{options['name']}”.")
        for check in campaign_checks(campaign=campaign):
            self.stderr.write(f"{check.level}: {check.message}")
        try:
            snapshot = campaign_launch(campaign=campaign)
        except LaunchBlocked as exc:
            raise CommandError(f"Not launched: {exc}") from exc
        campaign.refresh_from_db()
        if snapshot is not None:
            excluded = ", ".join(f"{k} {v}" for k, v in sorted(snapshot.excluded.items()))
            self.stdout.write(f"Launched “{campaign}”: {snapshot.recipients} recipients"
                              + (f"; excluded: {excluded}" if excluded else "") + ".")
        else:
            self.stdout.write(f"“{campaign}” is {campaign.get_status_display()}.")
        if not options["wait"]:
            return
        started = time.monotonic()
        while campaign.status not in FINAL:
            if options["timeout"] and time.monotonic() - started > options["timeout"]:
                raise CommandError(f"Still {campaign.status} after {options['timeout']} s.")
            if campaign.status == CampaignStatus.PAUSED:
                raise CommandError(f"Paused: {campaign.status_message}")
            # Do beat's work too (harmless when beat runs: sends are claimed once and
            # each campaign has a fixed number of sending slots).
            for campaign_id in campaigns_tick():
                campaign_send_task.delay(campaign_id)
            campaign.refresh_from_db()
            if campaign.status not in FINAL:
                time.sleep(1)
                campaign.refresh_from_db()
        self.stdout.write(f"“{campaign}” is {campaign.get_status_display()}. "
                          f"{campaign.status_message}".strip())
