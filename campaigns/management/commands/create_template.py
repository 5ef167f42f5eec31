from django.core.management.base import BaseCommand, CommandError

from campaigns.backends import get_backend
from campaigns.content import BLOCK, template_checks
from campaigns.models import TemplateCategory, TemplateStatus
from campaigns.selectors import opt_out_words
from campaigns.services import template_create


class Command(BaseCommand):
    help = ("Create (or update) a message template as approved in WhatsApp Manager. It is "
            "marked approved when the sender cannot check approval itself.")

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--language", required=True)
        parser.add_argument("--category", default="marketing", choices=TemplateCategory.values)
        parser.add_argument("--body", required=True)
        parser.add_argument("--variables", default="",
                            help='Comma-separated sources, e.g. "salutation_last_name,first_name"')
        parser.add_argument("--footer", default="")

    def handle(self, *args, **options):
        variables = [v.strip() for v in options["variables"].split(",") if v.strip()]
        status = (TemplateStatus.PENDING if get_backend().can_check_templates
                  else TemplateStatus.APPROVED)
        template = template_create(
            name=options["name"], language=options["language"], body=options["body"],
            category=options["category"], variables=variables, footer=options["footer"],
            status=status)
        problems = template_checks(template, opt_out_words=opt_out_words())
        for check in problems:
            self.stderr.write(f"{check.level}: {check.message}")
        if any(c.level == BLOCK for c in problems):
            raise CommandError(f"Template {template} saved, but it cannot be sent as it is.")
        self.stdout.write(f"Template {template} saved ({template.get_status_display()}).")
