"""The worked examples of docs/extending.md, run as written."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from crm.models import Contact, Event
from tests.campaigns.test_backends import TO, BackendContract

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"


def example(name: str) -> dict:
    """Run the code block marked ``<!-- example: name -->`` and return its namespace."""
    found = re.search(rf"<!-- example: {name} -->\s*```python\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"docs/extending.md has no example “{name}”"
    namespace: dict = {"__name__": f"docs_example_{name}"}
    exec(compile(found.group(1), f"docs/extending.md:{name}", "exec"), namespace)
    return namespace


@pytest.fixture
def fields_restored():
    from tagging.audiences.language import FIELDS

    before = dict(FIELDS)
    yield
    FIELDS.clear()
    FIELDS.update(before)


@pytest.mark.django_db
def test_the_rule_field_example_filters_contacts(fields_restored, make_contact):
    from tagging.audiences.selectors import contacts_matching, count_matching

    example("rule_field")
    teacher = make_contact(occupation="Lehrerin", purchase_count=2, total_spent=Decimal("150"))
    make_contact(occupation="Koch", purchase_count=4, total_spent=Decimal("100"))
    make_contact(occupation="Lehrerin")
    assert count_matching('occupation = "Lehrerin"') == 2
    assert list(contacts_matching('average_order >= 50 AND occupation = "Lehrerin"')) == [teacher]
    assert count_matching("average_order < 50") == 1


class TestTheSenderBackendExample(BackendContract):
    @pytest.fixture
    def backend(self):
        return example("sender_backend")["ListBackend"]()

    @pytest.fixture(autouse=True)
    def _refusals(self, backend):
        self._refuse = type(backend).refuse  # the example's class, made fresh for this test

    def refuse_next(self, code):
        self._refuse[TO] = code


@pytest.mark.django_db
def test_the_event_source_example_records_orders_once(make_contact):
    contact = make_contact(phone="+491701234567")
    record = example("event_source")["shop_orders_record"]
    orders = [{"id": 1, "phone": "0170 1234567", "total": "19.90", "sku": "LIP-RED"},
              {"id": 2, "phone": "+49 170 7654321", "total": "5.00", "sku": "GUM"}]
    first, again = record(orders), record(orders)
    assert (len(first.stored), first.contacts_created) == (2, 1)
    assert (len(again.stored), again.duplicates) == (0, 2)
    contact.refresh_from_db()
    assert (contact.purchase_count, contact.total_spent) == (1, Decimal("19.90"))
    assert Event.objects.filter(source="shop").count() == 2 and Contact.objects.count() == 2


@pytest.mark.django_db
def test_the_dashboard_panel_example_appears_on_the_dashboard(make_contact):
    from crm.events import EventIn, events_record
    from tagging.insight.services import dashboard_snapshot_refresh
    from tagging.insight.usage import unregister_panel

    events_record(source="shop", events=[EventIn(kind="purchase", phone="+491701234567",
                                                 amount=Decimal("9.50"), product="GUM")])
    example("dashboard_panel")
    try:
        data = dashboard_snapshot_refresh().data
    finally:
        unregister_panel("shop-orders")
    (panel,) = [p for p in data["panels"] if p["key"] == "shop-orders"]
    assert panel["data"]["rows"] == [["GUM", 1, "9.50"]]
