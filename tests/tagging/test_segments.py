from datetime import date, timedelta

import pytest
from django.utils import timezone

from crm.models import ConsentStatus
from tagging.audiences.language import SegmentError, parse
from tagging.audiences.selectors import contacts_matching
from tagging.services import tags_change

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_contact, make_dimension, make_tag):
    """Six contacts with known tags and facts; names say what they hold."""
    power = make_dimension(name="Kaufkraft")
    vip, svip = make_tag(dimension=power, name="VIP"), make_tag(dimension=power, name="SVIP")
    makeup, done = make_tag(name="Interesse-Make-up"), make_tag(name="Kaufphase-Abgeschlossen")
    lipstick, churn = make_tag(name="Produktkategorie-Lippenstift"), make_tag(
        name="Drohender Abwanderer")
    ordered = make_tag(name="Bestellt")
    make_tag(name="Historischer Bestand")
    now = timezone.now()
    c = {
        "makeup_done": make_contact(purchase_count=4, last_interaction_at=now - timedelta(days=3)),
        "makeup_done_lipstick": make_contact(purchase_count=1,
                                             first_purchase_at=now - timedelta(days=200)),
        "vip_never_interacted": make_contact(gender="f", birth_date=date.today().replace(
            year=date.today().year - 31, day=1)),
        "svip_churn": make_contact(country="HK", language="zh",
                                   last_interaction_at=now - timedelta(days=10)),
        "ordered_recent": make_contact(last_interaction_at=now - timedelta(days=29),
                                       consent_status=ConsentStatus.OPTED_OUT),
        "nothing": make_contact(purchase_count=1, first_purchase_at=now - timedelta(days=5)),
    }
    tags_change(contacts=[c["makeup_done"], c["makeup_done_lipstick"]], add=[makeup, done])
    tags_change(contacts=[c["makeup_done_lipstick"]], add=[lipstick])
    tags_change(contacts=[c["vip_never_interacted"]], add=[vip])
    tags_change(contacts=[c["svip_churn"]], add=[svip, churn])
    tags_change(contacts=[c["ordered_recent"]], add=[ordered])
    return c


def names(world, expression) -> set[str]:
    ids = set(contacts_matching(expression).values_list("pk", flat=True))
    return {name for name, contact in world.items() if contact.pk in ids}


@pytest.mark.parametrize(("expression", "expected"), [
    ('"Interesse-Make-up" AND "Kaufphase-Abgeschlossen" AND NOT "Produktkategorie-Lippenstift"',
     {"makeup_done"}),
    ('("VIP" OR "SVIP") AND NOT ("Drohender Abwanderer" OR "Historischer Bestand")',
     {"vip_never_interacted"}),
    ('"Kaufkraft/*"', {"vip_never_interacted", "svip_churn"}),
    ('NOT "Kaufkraft/*"', {"makeup_done", "makeup_done_lipstick", "ordered_recent", "nothing"}),
    ("purchases > 3", {"makeup_done"}),
    ("purchases = 1 AND NOT first_purchase within 90d", {"makeup_done_lipstick"}),
    ('last_interaction within 30d AND NOT "Bestellt"', {"makeup_done", "svip_churn"}),
    ('"VIP" AND NOT last_interaction within 180d', {"vip_never_interacted"}),
    ('age >= 25 AND age <= 34 AND gender = "f"', {"vip_never_interacted"}),
    ('country = "hk" OR language = "ZH"', {"svip_churn"}),
    ('consent = "opted_out"', {"ordered_recent"}),
    ('"kaufkraft/vip" or "BESTELLT"', {"vip_never_interacted", "ordered_recent"}),
])
def test_examples_from_the_brief(world, expression, expected):
    assert names(world, expression) == expected


def test_age_counts_whole_years(world, make_contact):
    today = timezone.now().date()
    born = today.replace(year=today.year - 30)
    exact = make_contact(birth_date=born, gender="f")
    assert exact in contacts_matching('age >= 25 AND age <= 34 AND gender = "f"')
    assert exact in contacts_matching("age = 30")
    assert exact not in contacts_matching("age > 30")


def test_and_binds_tighter_than_or(world):
    assert names(world, '"SVIP" OR "VIP" AND "Bestellt"') == {"svip_churn"}


@pytest.mark.parametrize(("expression", "message", "position"), [
    ('last_interaction within 30d AND NOT "Bestelt"', 'did you mean “Bestellt”', 37),
    ("purchase > 3", "did you mean “purchases”", 1),
    ('"VIP" AND', "ends too early", 10),
    ('("VIP" OR "SVIP"', "expected “)”", 17),
    ('"VIP', "unterminated quote", 1),
    ("purchases > many", "compares with a number", 13),
    ('"Kaufkraft/Gold"', "unknown tag “Gold” in dimension “Kaufkraft”", 1),
    ("last_read within 14", "duration", 18),
    ("", "empty", 1),
])
def test_errors_name_the_position_and_nearest_names(world, expression, message, position):
    with pytest.raises(SegmentError) as error:
        parse(expression)
    assert message in error.value.message
    assert error.value.position == position


def test_archived_tags_still_work(world, make_tag):
    from tagging.models import Tag

    Tag.objects.filter(name="VIP").update(is_archived=True)
    assert names(world, '"VIP"') == {"vip_never_interacted"}


# --- audiences: more grammar ----------------------------------------------------------


@pytest.mark.parametrize(("expression", "expected"), [
    ('NOT "VIP" AND "Kaufkraft/*"', {"svip_churn"}),  # NOT binds tighter than AND
    ('NOT ("VIP" OR "SVIP") AND consent = "opted_out"', {"ordered_recent"}),
    ('"VIP" or "SVIP" and "Drohender Abwanderer"', {"vip_never_interacted", "svip_churn"}),
    ('("VIP" or "SVIP") and "Drohender Abwanderer"', {"svip_churn"}),
    ('"SVIP" -- a comment runs to the end of the line\n OR "VIP"',
     {"vip_never_interacted", "svip_churn"}),
    ("last_interaction within 2w AND last_interaction WITHIN 264h", {"makeup_done",
                                                                     "svip_churn"}),
    ("purchases != 1 AND purchases >= 4", {"makeup_done"}),
    ('"Kaufkraft/VIP" AND NOT "kaufkraft/svip"', {"vip_never_interacted"}),
])
def test_precedence_case_comments_and_units(world, expression, expected):
    assert names(world, expression) == expected


def test_quotes_inside_a_tag_name_are_escaped(world, make_tag, make_contact):
    quoted = make_tag(name='Sagt "Hallo"')
    contact = make_contact()
    tags_change(contacts=[contact], add=[quoted])
    assert list(contacts_matching(r'"Sagt \"Hallo\""')) == [contact]


@pytest.mark.parametrize(("expression", "message", "position"), [
    ('"VIP" AND lastinteraction within 30d', "did you mean “last_interaction”", 11),
    ('"VIP" "SVIP"', "expected AND, OR or the end", 7),
    ('"VIP" AND (', "ends too early", 12),
    ("country > \"DE\"", "is text; compare it with = or !=", 9),
    ('consent = "yes"', "consent is one of", 11),
    ("age within 3d", "“within” works only on dates", 1),
    ('"VIP" & "SVIP"', "unexpected character “&”", 7),
    ('"Kaufkraf/*"', "unknown dimension “Kaufkraf” — did you mean “Kaufkraft”", 1),
])
def test_more_errors_with_positions(world, expression, message, position):
    with pytest.raises(SegmentError) as error:
        parse(expression)
    assert message in error.value.message
    assert error.value.position == position
