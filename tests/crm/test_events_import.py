import io
import json

import pytest
from django.core.management import CommandError, call_command

from crm.events_import import events_import
from crm.models import Contact, Event

pytestmark = pytest.mark.django_db

CSV = """phone,type,occurred_at,amount,currency,product,category,source_id
+49 170 1234567,purchase,2025-01-10T10:00:00+01:00,19.90,EUR,Lippenstift Rot,Lippenstift,o-1
+49 170 1234567,purchase,2025-02-10,5,EUR,Puder,,o-2
+49 170 7654321,cart_abandoned,2025-02-11 09:30,,,,,c-1
+49 170 7654321,webinar_attended,2025-02-12,,,,,w-1
12,interaction,2025-02-12,,,,,i-1
+49 170 7654321,purchase,yesterday,,,,,o-3
+49 170 7654321,purchase,2025-02-12,abc,,,,o-4
"""


def test_import_stores_events_updates_facts_and_reports_failures_by_reason():
    report = events_import(stream=io.StringIO(CSV))
    assert (report.rows, report.stored, report.failed, report.contacts_created) == (7, 4, 3, 2)
    assert dict(report.failures) == {"invalid_phone": 1, "bad_date": 1, "bad_amount": 1}
    assert report.examples["invalid_phone"][0].startswith("line 6")
    assert report.too_many_failures
    buyer = Contact.objects.get(phone="+491701234567")
    assert buyer.purchase_count == 2 and str(buyer.total_spent) == "24.90"
    assert Event.objects.get(source_id="w-1").name == "webinar_attended"


def test_importing_the_same_file_again_changes_nothing():
    events_import(stream=io.StringIO(CSV))
    again = events_import(stream=io.StringIO(CSV))
    assert (again.stored, again.duplicates) == (0, 4)
    assert Contact.objects.get(phone="+491701234567").purchase_count == 2


def test_command_prints_json_and_refuses_a_file_without_the_columns(tmp_path, capsys):
    path = tmp_path / "events.csv"
    path.write_text(CSV, encoding="utf-8")
    call_command("import_events", str(path), "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["stored"] == 4 and data["failures_by_reason"]["bad_date"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("number,what\n1,2\n", encoding="utf-8")
    with pytest.raises(CommandError, match="phone, type"):
        call_command("import_events", str(bad))
