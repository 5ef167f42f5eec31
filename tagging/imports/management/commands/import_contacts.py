import json
import shutil

from django.core.management.base import BaseCommand, CommandError

from tagging.imports.models import ConsentBasis, UnknownTags, UpdateMode
from tagging.imports.services import (
    ImportRefused,
    import_analyse,
    import_create,
    import_run,
)
from tagging.models import Dimension
from tagging.names import name_key


class Command(BaseCommand):
    help = ("Import contacts and their tags from a CSV, TXT or XLSX file, with a report of "
            "every row that failed and why. Safe to re-run: a second run changes nothing.")

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--region", default="",
                            help="Country for numbers without +country code, e.g. DE.")
        parser.add_argument("--encoding", default="", help="Declare the encoding (else detected).")
        parser.add_argument("--consent-source", default="",
                            help="Where the people in the file opted in. Without it new "
                                 "contacts get consent “unknown”.")
        parser.add_argument("--overwrite", action="store_true",
                            help="Overwrite facts of existing contacts (default: fill empty).")
        parser.add_argument("--attributes", action="store_true",
                            help="Keep other columns in the contacts' attributes.")
        parser.add_argument("--unknown-tags", choices=UnknownTags.values,
                            default=UnknownTags.FAIL,
                            help="A row naming a tag that does not exist: fail the row "
                                 "(default), import it without those tags (skip), or create "
                                 "them (create, needs --dimension).")
        parser.add_argument("--create-missing-tags", action="store_true",
                            help="The same as --unknown-tags create.")
        parser.add_argument("--dimension", default="",
                            help="Dimension for tags created by --unknown-tags create.")
        parser.add_argument("--consent-for-whatsapp", action="append", default=[],
                            metavar="COLUMN",
                            help="A consent column of another channel (e.g. “Accepts SMS "
                                 "Marketing”) whose yes counts as a WhatsApp opt-in; "
                                 "repeatable. A no in any consent column always keeps the "
                                 "row from being opted in.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Read the whole file and report what would happen; write nothing.")
        parser.add_argument("--errors", default="", help="Write the failed rows to this CSV.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **opts):
        dimension = None
        unknown_tags = UnknownTags.CREATE if opts["create_missing_tags"] else opts["unknown_tags"]
        if unknown_tags == UnknownTags.CREATE:
            if not opts["dimension"]:
                raise CommandError("--unknown-tags create needs --dimension NAME.")
            dimension = Dimension.objects.filter(name_key=name_key(opts["dimension"])).first()
            if dimension is None:
                raise CommandError(f"There is no dimension “{opts['dimension']}”.")
        try:
            job = import_create(
                path=opts["path"], region=opts["region"].upper(), encoding=opts["encoding"],
                consent_basis=ConsentBasis.OPTED_IN if opts["consent_source"]
                else ConsentBasis.UNKNOWN,
                consent_source=opts["consent_source"],
                update_mode=UpdateMode.OVERWRITE if opts["overwrite"] else UpdateMode.FILL_EMPTY,
                unknown_tags=unknown_tags, missing_tags_dimension=dimension,
                consent_for_whatsapp=opts["consent_for_whatsapp"],
                extra_columns_to_attributes=opts["attributes"],
            )
        except FileNotFoundError:
            raise CommandError(f"No such file: {opts['path']}") from None
        except ImportRefused as exc:
            raise CommandError(str(exc)) from None
        try:
            if opts["dry_run"]:
                outcome = import_analyse(job=job)
                failed_file = job.preview.get("failed_rows_file")
                report = {**outcome.as_dict(), "dry_run": True, "notes": []}
            else:
                outcome = import_run(job=job)
                job.refresh_from_db()
                failed_file = job.failed_rows.path if job.failed_rows else None
                report = {**job.report, "import": job.pk}
        except ImportRefused as exc:
            raise CommandError(str(exc)) from None
        if opts["errors"] and failed_file:
            shutil.copyfile(failed_file, opts["errors"])
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
            return
        verb = "would be" if opts["dry_run"] else "were"
        self.stdout.write(
            f"{report['rows']} rows read: {report['created']} contacts {verb} created, "
            f"{report['updated']} updated, {report['unchanged']} unchanged, "
            f"{report['failed']} failed; {report['tags_added']} tags added, "
            f"{report['tags_removed']} removed.")
        for reason, count in report["errors"].items():
            self.stdout.write(f"  {reason}: {count}")
        for code, count in report.get("warnings", {}).items():
            self.stdout.write(f"  warning {code}: {count}")
        for note in report.get("notes", []):
            self.stdout.write(note)
