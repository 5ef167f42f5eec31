"""python manage.py tag_contacts --where "EXPR" [--add "A,B"] [--remove "C"] [--dry-run] [--json]"""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from tagging.audiences.language import SegmentError
from tagging.audiences.selectors import ids_matching
from tagging.audiences.services import bulk_operation_start, bulk_preview
from tagging.selectors import tags_by_name
from tagging.services import TagChangeError


def _names(value: str) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


class Command(BaseCommand):
    help = ("Add and remove tags on every contact matching an expression, recorded as a bulk "
            "operation that can be undone in the admin. Safe to re-run: a second run changes "
            "nothing more.")

    def add_arguments(self, parser):
        parser.add_argument("--where", required=True, help="Segment expression.")
        parser.add_argument("--add", default="", help='Tag names to add, comma-separated.')
        parser.add_argument("--remove", default="", help="Tag names to remove, comma-separated.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Only count who would gain and lose each tag.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, where: str, add: str, remove: str, dry_run: bool, json: bool,
               **options):
        add_tags, missing_add = tags_by_name(_names(add))
        remove_tags, missing_remove = tags_by_name(_names(remove))
        missing = missing_add + missing_remove
        if missing:
            raise CommandError(f"Unknown tag(s): {', '.join(missing)}")
        if not add_tags and not remove_tags:
            raise CommandError("Give --add and/or --remove with at least one tag name.")
        try:
            contacts = ids_matching(where)  # fixed once: the preview is what gets applied
            preview = bulk_preview(contacts=contacts, add=add_tags, remove=remove_tags)
            result = {"dry_run": dry_run, **preview.as_json()}
            if not dry_run:
                bulk = bulk_operation_start(contacts=contacts, add=add_tags, remove=remove_tags,
                                            selection=f"command: {where}", preview=preview,
                                            background=False)
                result.update(operation=str(bulk.operation), bulk_id=bulk.pk,
                              added=bulk.added, removed=bulk.removed + bulk.replaced,
                              status=bulk.status)
        except (SegmentError, TagChangeError, PermissionDenied) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_render(result, as_json=json))


def _render(result: dict, *, as_json: bool) -> str:
    if as_json:
        return json.dumps(result, ensure_ascii=False)
    lines = [f"{result['total']} contacts match" + (" (dry run)" if result["dry_run"] else "")]
    lines += [f"  {t['tag']}: +{t['gain']} -{t['lose']}" for t in result["tags"]]
    if not result["dry_run"]:
        lines.append(f"Done: {result['added']} added, {result['removed']} removed "
                     f"(operation {result['operation']}).")
    return "\n".join(lines)
