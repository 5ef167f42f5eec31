"""Each starter rule at its boundaries, with hand-built contacts and a fixed clock."""

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Event, EventKind
from tagging.models import Tag
from tagging.rules.models import Rule
from tagging.rules.services import rule_run, rules_run
from tagging.rules.starter import STARTERS, rules_load_starter
from tagging.services import tags_change

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def days(n: float):
    return NOW - timedelta(days=n)


@pytest.fixture
def rules():
    rules_load_starter()
    return {r.starter_key: r for r in Rule.objects.all()}


def tag(name: str) -> Tag:
    return Tag.objects.get(name=name)


def give(contacts, *names):
    tags_change(contacts=contacts, add=[tag(n) for n in names])


def names(contact) -> set[str]:
    return set(contact.tags.values_list("name", flat=True))


def run(rule):
    outcome = rule_run(rule=rule, now=NOW)
    assert not outcome.errors
    return outcome


def test_starter_rules_load_once_and_edits_survive_a_reload(rules):
    assert len(rules) == len(STARTERS) == 12
    rule = rules["starter-1"]
    rule.segment = "purchases > 5"
    rule.save()
    assert rules_load_starter() == (0, 12)
    assert Rule.objects.get(pk=rule.pk).segment == "purchases > 5"


def test_rule_1_more_than_three_purchases(rules, make_contact):
    three, four = make_contact(purchase_count=3), make_contact(purchase_count=4)
    assert run(rules["starter-1"]).added == 1
    assert "Hochwertiger Kunde" not in names(three)
    assert "Hochwertiger Kunde" in names(four)


def test_rule_2_no_read_for_14_days(rules, make_contact):
    day13, day14, day15 = (make_contact(created_at=days(100), last_read_at=days(d))
                           for d in (13, 14, 15))
    never, newcomer = make_contact(created_at=days(100)), make_contact(created_at=days(5))
    give([day13, day14, day15, never, newcomer], "Hohe Aktivität")
    run(rules["starter-2"])
    for unchanged in (day13, day14, newcomer):  # day 14 exactly: not yet *more* than 14
        assert names(unchanged) == {"Hohe Aktivität"}
    for changed in (day15, never):
        assert names(changed) == {"Beobachtung notwendig"}


def test_rule_3_purchase_and_cart_abandoned_events(rules, make_contact,
                                                   django_capture_on_commit_callbacks):
    from crm.events import EventIn, events_record

    buyer, hesitant = make_contact(), make_contact()
    give([buyer], "Warenkorbabbruch")
    with django_capture_on_commit_callbacks(execute=True):
        events_record(events=[
            EventIn(kind=EventKind.PURCHASE, contact_id=buyer.pk, product="Lippenstift Rot",
                    occurred_at=NOW, source_id="o-1"),
            EventIn(kind=EventKind.CART_ABANDONED, contact_id=hesitant.pk, source_id="c-1"),
        ], source="shop")
    bought = f"Gekauft {timezone.localtime(NOW):%Y-%m} Lippenstift Rot"
    assert names(buyer) == {bought}
    assert tag(bought).dimension.name == "Käufe"
    assert names(hesitant) == {"Warenkorbabbruch"}


def test_rule_3_a_purchase_in_the_same_batch_beats_the_cart_abandonment(
        rules, make_contact, django_capture_on_commit_callbacks):
    from crm.events import EventIn, events_record

    contact = make_contact()
    with django_capture_on_commit_callbacks(execute=True):
        events_record(events=[
            EventIn(kind=EventKind.CART_ABANDONED, contact_id=contact.pk, source_id="c-1"),
            EventIn(kind=EventKind.PURCHASE, contact_id=contact.pk, product="Puder",
                    source_id="o-1"),
        ], source="shop")
    assert "Warenkorbabbruch" not in names(contact)


def test_rule_4_no_read_for_60_days(rules, make_contact):
    day59, day60, day61 = (make_contact(created_at=days(200), last_read_at=days(d))
                           for d in (59, 60, 61))
    give([day59, day60, day61], "Hohe Aktivität", "Hohes Potenzial - Nachverfolgung erforderlich",
         "Inaktiver Kunde")
    run(rules["starter-4"])
    active = {"Hohe Aktivität", "Hohes Potenzial - Nachverfolgung erforderlich"}
    assert active <= names(day59) and active <= names(day60)
    assert names(day61) == {"Drohender Abwanderer", "Inaktiver Kunde"}


def read_events(contact, count):
    Event.objects.bulk_create([
        Event(contact=contact, kind=EventKind.MESSAGE_READ, occurred_at=days(i * 5 + 1),
              batch="00000000-0000-0000-0000-000000000000") for i in range(count)])


def test_rule_5_lifecycle_by_days_since_joining(rules, make_contact):
    day30, day31, day31_reader = (make_contact(created_at=days(d)) for d in (30, 31, 31))
    day90, day91 = make_contact(created_at=days(90)), make_contact(created_at=days(91))
    loyal = make_contact(created_at=days(91), purchase_count=2)
    read_events(day31_reader, 4)  # one a week over the last four weeks
    read_events(day31, 3)
    give([day30, day31, day31_reader, day90], "Neukunde")
    give([day91, loyal], "Wachstum-Niedrige Frequenz")
    rules_run(rules=[rules[k] for k in ("starter-5a", "starter-5b", "starter-5c",
                                        "starter-5d", "starter-5e")], now=NOW)
    assert names(day30) == {"Neukunde"}
    assert names(day31) == {"Wachstum-Niedrige Frequenz"}
    assert names(day31_reader) == {"Wachstum-Hohe Frequenz"}
    assert names(day90) == {"Wachstum-Niedrige Frequenz"}
    assert names(day91) == {"Wachstum-Niedrige Frequenz", "Drohender Abwanderer"}
    assert names(loyal) == {"Wachstum-Niedrige Frequenz"}


def test_rule_5_neukunde_never_survives_60_days_after_the_first_purchase(rules, make_contact):
    day59, day60, day61 = (make_contact(created_at=days(20), purchase_count=1,
                                        first_purchase_at=days(d)) for d in (59, 60, 61))
    give([day59, day60, day61], "Neukunde")
    rules_run(rules=[rules["starter-5a"], rules["starter-5e"]], now=NOW)
    assert names(day59) == names(day60) == {"Neukunde"}
    assert names(day61) == set()
    # and the next day's run does not bring it back
    rules_run(rules=[rules["starter-5a"], rules["starter-5e"]], now=NOW)
    assert names(day61) == set()


def test_rule_6_sleeping_vips(rules, make_contact):
    day179, day180, day181 = (make_contact(last_interaction_at=days(d))
                              for d in (179, 180, 181))
    give([day179, day180, day181], "VIP")
    run(rules["starter-6"])
    assert names(day179) == names(day180) == {"VIP"}
    assert names(day181) == {"Historischer Bestand - Reaktivierung erforderlich"}


def test_rule_7_birthday_soon_and_removed_after(rules, make_contact):
    today = timezone.localtime(NOW).date()

    def born(offset):
        return (today + timedelta(days=offset)).replace(year=1988)

    in7, in8, today_ = (make_contact(birth_date=born(d)) for d in (7, 8, 0))
    past = make_contact(birth_date=born(-1))
    unknown = make_contact(birth_date=None)
    give([past], "Geburtstag bald")
    run(rules["starter-7"])
    assert "Geburtstag bald" in names(in7) and "Geburtstag bald" in names(today_)
    assert names(in8) == names(past) == names(unknown) == set()
