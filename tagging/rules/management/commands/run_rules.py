import json

from django.core.management.base import BaseCommand, CommandError

from tagging.rules.models import Rule, RuleTrigger, RunTrigger
from tagging.rules.services import rules_ordered, rules_run


class Command(BaseCommand):
    help = ("Run the enabled scheduled rules now, highest priority first (or one rule by name). "
            "Idempotent: a second run changes nothing that the first did.")

    def add_arguments(self, parser):
        parser.add_argument("--rule", action="append", default=[], metavar="NAME",
                            help="Only this rule (repeatable); runs it even when disabled.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Show what would change; change and log nothing.")
        parser.add_argument("--json", action="store_true",
                            help="Print per rule: matched, added, removed, changes.")

    def handle(self, *args, rule: list[str], dry_run: bool, json: bool = False, **options):
        if rule:
            found = {r.name: r for r in Rule.objects.filter(name__in=rule)}
            missing = [name for name in rule if name not in found]
            if missing:
                known = ", ".join(Rule.objects.order_by("name").values_list("name", flat=True))
                raise CommandError(f"No rule named {', '.join(missing)}. Rules: {known}")
            events = [r.name for r in found.values() if r.trigger == RuleTrigger.EVENT]
            if events:
                raise CommandError(f"{', '.join(events)}: event rules run when their events "
                                   "arrive; preview them in the admin.")
            rules = rules_ordered(Rule.objects.filter(pk__in=[r.pk for r in found.values()]))
        else:
            rules = None
        outcomes = rules_run(rules=rules, trigger=RunTrigger.MANUAL, dry_run=dry_run)
        if json:
            self.stdout.write(_dumps({"dry_run": dry_run,
                                      "rules": [o.as_dict() for o in outcomes]}))
            return
        for o in outcomes:
            line = (f"{o.rule}: {o.matched} matched, {o.added} added, {o.removed} removed "
                    f"({o.duration_ms} ms)")
            if o.errors:
                self.stdout.write(self.style.ERROR(f"{line} — {o.errors}"))
            else:
                self.stdout.write(line)
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")


def _dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)
