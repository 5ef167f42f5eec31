import json

from django.core.management.base import BaseCommand, CommandError

from tagging.offers.selectors import offer_eligible_count
from tagging.offers.services import OfferError, moment_parse, offer_create


class Command(BaseCommand):
    help = ("Create an offer only an audience may use, e.g. create_offer --slug vip-herbst "
            "--name \"VIP-Vorverkauf\" --where '\"VIP\"' --until 2026-12-24 (a date alone "
            "includes its whole day).")

    def add_arguments(self, parser):
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--where", required=True, help="The audience expression.")
        parser.add_argument("--from", dest="valid_from", default="",
                            help="First valid day or moment (YYYY-MM-DD[THH:MM]).")
        parser.add_argument("--until", default="",
                            help="Last valid day (inclusive), or the first moment it is no "
                                 "longer valid (YYYY-MM-DDTHH:MM).")
        parser.add_argument("--code", default="", help="A voucher code.")
        parser.add_argument("--link", default="", help="Where it is redeemed.")
        parser.add_argument("--description", default="")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        try:
            offer = offer_create(
                name=options["name"], slug=options["slug"], audience=options["where"],
                valid_from=moment_parse(options["valid_from"]),
                valid_until=moment_parse(options["until"], end=True),
                code=options["code"], link=options["link"],
                description=options["description"])
        except OfferError as exc:
            raise CommandError(str(exc)) from None
        eligible = offer_eligible_count(offer)
        if options["json"]:
            self.stdout.write(json.dumps({"slug": offer.slug, "id": offer.pk,
                                          "eligible": eligible}))
            return
        self.stdout.write(self.style.SUCCESS(
            f"Offer “{offer.name}” ({offer.slug}) created: {eligible} contacts in its "
            "audience."))
