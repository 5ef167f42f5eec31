"""Issue #15, “true history”: the starter rules give an imported history the same tags as
if its customers had been in Tagwerk all along.

One dated history of seven customers, two ways in: “all along” (contacts created on the
day they joined, events recorded as they happened) and “imported today” (a contact
import with a customer-since column, then ``import_events`` with the dated events).
The scheduled starter rules then run once, at the same moment, over both.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from crm.events import EventIn, events_record
from crm.events_import import events_import
from crm.models import Contact
from tagging.imports.models import ConsentBasis
from tagging.imports.services import import_create, import_run
from tagging.models import Tag
from tagging.rules.models import Rule, RuleTrigger
from tagging.rules.services import rules_run
from tagging.rules.starter import rules_load_starter
from tagging.services import tags_change

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def days(n: float):
    return NOW - timedelta(days=n)


@dataclass
class Customer:
    key: str
    joined: int  # days ago
    events: list[tuple[str, int]] = field(default_factory=list)  # (kind, days ago)
    tags: tuple[str, ...] = ()


HISTORY = [
    # A five-year customer with four purchases who stopped reading 20 days ago.
    Customer("veteran", 5 * 365, [("purchase", 900), ("purchase", 400), ("purchase", 100),
                                  ("purchase", 30), ("message_read", 20)],
             ("Hohe Aktivität",)),
    # Joined over a year ago, last read 20 days ago: rule 2 must judge them (on main a
    # contact imported today was skipped as "younger than 14 days").
    Customer("reader", 400, [("message_read", 60), ("message_read", 20)], ("Hohe Aktivität",)),
    # Really new: joined 10 days ago with a first purchase.
    Customer("newcomer", 10, [("purchase", 10), ("message_read", 2)]),
    # Day 45, reading every week: growth, high frequency.
    Customer("grower", 45, [("message_read", d) for d in (3, 10, 17, 24)]),
    # Day 45, hardly reading: growth, low frequency.
    Customer("quiet", 45, [("message_read", 40)]),
    # Silent for 70 days: churn risk.
    Customer("silent", 3 * 365, [("purchase", 200), ("message_read", 70)], ("Hohe Aktivität",)),
    # A VIP without interaction for 200 days: historical stock.
    Customer("sleeping", 2 * 365, [("interaction", 200), ("message_read", 5)], ("VIP",)),
]


def phone(world: int, number: int) -> str:
    return f"+491512{world}0000{number:02d}"


def all_along() -> dict[str, int]:
    """Contacts created the day they joined; events recorded as they happened."""
    ids = {}
    for n, customer in enumerate(HISTORY):
        contact = Contact.objects.create(phone=phone(3, n), country="DE",
                                         created_at=days(customer.joined),
                                         joined_at=days(customer.joined))
        ids[customer.key] = contact.pk
        if customer.tags:
            tags_change(contacts=[contact], add=[Tag.objects.get(name=t) for t in customer.tags])
        events_record(events=[
            EventIn(kind=kind, contact_id=contact.pk, occurred_at=days(ago), product="Puder",
                    source_id=f"a-{n}-{i}")
            for i, (kind, ago) in enumerate(customer.events)], source="shop")
    return ids


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def imported_today(tmp_path) -> dict[str, int]:
    """One contact import with a customer-since column, then the dated events."""
    lines = ["phone,Kunde seit,tags"]
    for n, customer in enumerate(HISTORY):
        since = timezone.localtime(days(customer.joined)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f'{phone(4, n)},{since},"{", ".join(customer.tags)}"')
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(lines) + "\n")
    job = import_create(path=path, consent_basis=ConsentBasis.UNKNOWN)
    import_run(job=job)
    job.refresh_from_db()
    assert (job.created, job.failed) == (len(HISTORY), 0), job.errors
    events = ["phone,type,occurred_at,product,source_id"]
    for n, customer in enumerate(HISTORY):
        events += [f"{phone(4, n)},{kind},{days(ago).isoformat()},Puder,b-{n}-{i}"
                   for i, (kind, ago) in enumerate(customer.events)]
    report = events_import(stream=io.StringIO("\n".join(events) + "\n"))
    assert report.failed == 0, report.as_dict()
    return {c.key: Contact.objects.get(phone=phone(4, n)).pk for n, c in enumerate(HISTORY)}


def tags_by_key(ids: dict[str, int]) -> dict[str, set[str]]:
    return {key: set(Tag.objects.filter(assignments__contact_id=pk)
                     .values_list("name", flat=True)) for key, pk in ids.items()}


def test_an_imported_history_gets_the_same_tags_as_one_that_was_here_all_along(tmp_path):
    rules_load_starter()
    along = all_along()
    imported = imported_today(tmp_path)
    # Every contact created today, yet the imported ones joined when their history says.
    assert Contact.objects.get(pk=imported["veteran"]).joined_at < days(5 * 365 - 1)

    rules_run(rules=list(Rule.objects.filter(trigger=RuleTrigger.SCHEDULE)), now=NOW)

    expected = tags_by_key(along)
    assert tags_by_key(imported) == expected
    # … and those are the tags the rules are meant to give.
    assert expected == {
        "veteran": {"Hochwertiger Kunde", "Beobachtung notwendig"},
        "reader": {"Beobachtung notwendig"},
        "newcomer": {"Neukunde"},
        "grower": {"Wachstum-Hohe Frequenz"},
        "quiet": {"Wachstum-Niedrige Frequenz", "Beobachtung notwendig"},
        "silent": {"Beobachtung notwendig", "Drohender Abwanderer"},
        "sleeping": {"Historischer Bestand - Reaktivierung erforderlich"},
    }
