from django.core.management.base import BaseCommand, CommandError

from crm.models import ApiScope
from crm.tokens import ApiTokenError, api_token_create, dimension_ids, dimension_names


class Command(BaseCommand):
    help = ("Create an API token for /api/v1/ and print it on the last line (it is shown "
            "only this once; only its hash is stored). Scopes: " + ", ".join(ApiScope.values)
            + ". Tokens with tags:write or bulk:write name the dimensions they may change.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what uses the token, e.g. “Shop (Shopify)”.")
        parser.add_argument("--scope", action="append", default=[], dest="scopes",
                            metavar="SCOPE", help="A scope; repeat for several.")
        parser.add_argument("--dimension", action="append", default=[], dest="dimensions",
                            metavar="NAME",
                            help="A dimension whose tags the token may add and remove; repeat "
                                 "for several.")
        parser.add_argument("--all-dimensions", action="store_true",
                            help="May add and remove tags of every dimension.")
        parser.add_argument("--rate-limit", type=int, metavar="N",
                            help="Requests per minute (default: TAGWERK_API_RATE_PER_MINUTE).")

    def handle(self, *args, name: str, scopes: list[str], dimensions: list[str],
               all_dimensions: bool, rate_limit: int | None, **options):
        if not name.strip():
            raise CommandError("Give the token a name that says who uses it.")
        if not scopes:
            raise CommandError("Give at least one --scope: " + ", ".join(ApiScope.values) + ".")
        if rate_limit is not None and rate_limit < 1:
            raise CommandError("--rate-limit is a number of requests per minute, at least 1.")
        try:
            ids = dimension_ids(dimensions) if dimensions else []
            token, raw = api_token_create(name=name.strip()[:100], scopes=scopes,
                                          dimensions=ids, all_dimensions=all_dimensions,
                                          rate_limit=rate_limit)
        except ApiTokenError as exc:
            raise CommandError(str(exc)) from None
        scopes_text = ", ".join(token.scopes)
        self.stdout.write(f"Token “{token.name}” created with the scopes {scopes_text}.")
        if token.dimensions or token.all_dimensions:
            self.stdout.write("It may change tags of: " + ", ".join(dimension_names(token)) + ".")
        self.stdout.write("Copy it now; it is not shown again:")
        self.stdout.write(raw)
