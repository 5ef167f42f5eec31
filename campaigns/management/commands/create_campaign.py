from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from campaigns.models import Template
from campaigns.services import CampaignError, campaign_create


class Command(BaseCommand):
    help = "Create a draft campaign for a template and a segment expression."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--template", required=True,
                            help="Template name (or name:language when several languages exist)")
        parser.add_argument("--where", required=True, help="The audience as a segment expression")
        parser.add_argument("--suppress", default="", help="Leave out contacts matching this")
        parser.add_argument("--at", default="", help="ISO date-time to send at")
        parser.add_argument("--rate", type=int, default=None, help="Messages per second")

    def handle(self, *args, **options):
        name, _sep, language = options["template"].partition(":")
        templates = Template.objects.filter(name=name)
        if language:
            templates = templates.filter(language=language)
        if templates.count() != 1:
            raise CommandError(
                f"Template “{options['template']}” not found or ambiguous; use name:language "
                "(see create_template).")
        at = None
        if options["at"]:
            at = parse_datetime(options["at"])
            if at is None:
                raise CommandError(f"--at “{options['at']}” is not an ISO date-time, e.g. "
                                   "2026-03-03T11:00:00+01:00.")
        try:
            campaign = campaign_create(name=options["name"], template=templates.get(),
                                       audience=options["where"], suppression=options["suppress"],
                                       scheduled_at=at, rate_per_second=options["rate"])
        except CampaignError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Campaign “{campaign}” created (draft). Launch it with "
                          f"launch_campaign \"{campaign}\".")
