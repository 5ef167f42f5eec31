"""Journeys: each trigger, wait, check, exit, the outcome log and exactly-once across restarts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from campaigns.journeys.models import (
    Enrollment,
    EnrollmentStatus,
    EnrollmentStep,
    ExitReason,
    JourneyTrigger,
    Outcome,
)
from campaigns.journeys.services import (
    LEASE,
    enrollment_run,
    journey_activate,
    journey_enroll,
    journeys_advance,
    journeys_enroll_scheduled,
    wait_until,
)
from campaigns.models import Send
from crm.events import EventIn, events_record
from crm.models import ConsentStatus, Contact
from tagging.models import TagAssignment
from tagging.services import tags_change
from tests.journeys.conftest import CHECK, SEND, TAGS, WAIT

pytestmark = pytest.mark.django_db


@pytest.fixture
def neukunde(make_tag):
    return make_tag(name="Neukunde")


def outcomes(contact) -> list[tuple[int, str]]:
    return list(EnrollmentStep.objects.filter(enrollment__contact=contact).order_by(
        "position").values_list("position", "outcome"))


def change_tags(capture, **kwargs):
    with capture(execute=True):
        tags_change(**kwargs)


# --- triggers -------------------------------------------------------------------------------

def test_tag_added_enters_and_sends_the_welcome(make_journey, make_contact, neukunde, template,
                                                outbox, django_capture_on_commit_callbacks):
    make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                 trigger_tag=neukunde)
    contact = make_contact(first_name="Mia")
    change_tags(django_capture_on_commit_callbacks, contacts=[contact], add=[neukunde])
    enrollment = Enrollment.objects.get(contact=contact)
    with django_capture_on_commit_callbacks(execute=True):
        journeys_advance()
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert outcomes(contact) == [(1, Outcome.SENT)]
    assert Send.objects.get(contact=contact).campaign.triggered
    assert [m["to"] for m in outbox] == [contact.phone.lstrip("+")]


def test_tag_removed_enters_only_on_removal(make_journey, make_contact, neukunde, template,
                                            django_capture_on_commit_callbacks):
    make_journey(JourneyTrigger.TAG_REMOVED, [(SEND, {"template": template})],
                 trigger_tag=neukunde)
    contact = make_contact()
    change_tags(django_capture_on_commit_callbacks, contacts=[contact], add=[neukunde])
    assert not Enrollment.objects.exists()
    change_tags(django_capture_on_commit_callbacks, contacts=[contact], remove=[neukunde])
    assert Enrollment.objects.filter(contact=contact).count() == 1


def test_event_of_a_kind_enters(make_journey, make_contact, template,
                                django_capture_on_commit_callbacks):
    make_journey(JourneyTrigger.EVENT, [(SEND, {"template": template})],
                 trigger_event_kind="cart_abandoned", exit_on_purchase=True)
    contact = make_contact()
    with django_capture_on_commit_callbacks(execute=True):
        events_record(events=[EventIn(kind="purchase", contact_id=contact.pk)])
    assert not Enrollment.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        events_record(events=[EventIn(kind="cart_abandoned", contact_id=contact.pk)])
    assert Enrollment.objects.filter(contact=contact).count() == 1


def test_joined_enters_contacts_that_join_after_switching_on(make_journey, make_contact,
                                                             template):
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})],
                           active=False)
    before = make_contact(joined_at=timezone.now() - timedelta(days=1))
    journey_activate(journey=journey)
    after = make_contact(joined_at=timezone.now() + timedelta(seconds=1))
    assert journeys_enroll_scheduled(now=timezone.now() + timedelta(minutes=1)) == 1
    assert list(Enrollment.objects.values_list("contact_id", flat=True)) == [after.pk]
    assert before.pk != after.pk
    assert journeys_enroll_scheduled(now=timezone.now() + timedelta(minutes=2)) == 0


def test_birthday_enters_once_a_year(make_journey, make_contact, template):
    make_journey(JourneyTrigger.BIRTHDAY, [(SEND, {"template": template})])
    now = timezone.now()
    today = timezone.localtime(now).date()
    contact = make_contact(birth_date=date(1990, today.month, min(today.day, 28)))
    if today.day > 28:
        pytest.skip("the fixture's birthday is the 28th at the latest")
    make_contact(birth_date=today - timedelta(days=40))
    assert journeys_enroll_scheduled(now=now) == 1
    assert journeys_enroll_scheduled(now=now) == 0
    next_year = now.replace(year=now.year + 1)
    assert journeys_enroll_scheduled(now=next_year) == 1
    assert sorted(Enrollment.objects.filter(contact=contact).values_list(
        "occurrence", flat=True)) == [str(today.year), str(today.year + 1)]
    journeys_advance(now=now)
    journeys_advance(now=next_year)
    # One message per year: a campaign per year, one send each.
    assert Send.objects.filter(contact=contact).count() == 2


def test_only_for_keeps_others_out(make_journey, make_contact, neukunde, template, make_tag,
                                   django_capture_on_commit_callbacks):
    vip = make_tag(name="VIP")
    make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                 trigger_tag=neukunde, audience='"VIP"')
    inside, outside = make_contact(), make_contact()
    tags_change(contacts=[inside], add=[vip])
    change_tags(django_capture_on_commit_callbacks, contacts=[inside, outside], add=[neukunde])
    assert list(Enrollment.objects.values_list("contact_id", flat=True)) == [inside.pk]


def test_an_inactive_journey_lets_nobody_in(make_journey, make_contact, neukunde, template,
                                            django_capture_on_commit_callbacks):
    make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                 trigger_tag=neukunde, active=False)
    change_tags(django_capture_on_commit_callbacks, contacts=[make_contact()], add=[neukunde])
    assert not Enrollment.objects.exists()


# --- waits and the other steps ---------------------------------------------------------------

def test_wait_three_days_then_the_tip(make_journey, make_contact, template, tip):
    journey = make_journey(JourneyTrigger.JOINED, [
        (SEND, {"template": template}), (WAIT, {"wait_days": 3}), (SEND, {"template": tip})])
    contact = make_contact()
    now = timezone.now()
    journey_enroll(journey=journey, contact_ids=[contact.pk], now=now)
    journeys_advance(now=now)
    enrollment = Enrollment.objects.get()
    assert enrollment.position == 3 and enrollment.due_at == now + timedelta(days=3)
    assert outcomes(contact) == [(1, Outcome.SENT), (2, Outcome.WAITING)]
    assert journeys_advance(now=now + timedelta(days=2)).runs == 0
    journeys_advance(now=now + timedelta(days=3))
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert outcomes(contact)[-1] == (3, Outcome.SENT)
    assert Send.objects.filter(contact=contact).count() == 2


@pytest.mark.parametrize(("local", "expected"), [
    ("2026-03-10 09:30", "2026-03-10 11:00"),   # before the window: today at its start
    ("2026-03-10 12:00", "2026-03-10 12:00"),   # inside: as it is
    ("2026-03-10 20:00", "2026-03-11 11:00"),   # at its end: tomorrow
    ("2026-03-10 23:30", "2026-03-11 11:00"),
])
def test_wait_until_the_window_in_the_contacts_zone(make_contact, local, expected):
    from campaigns.journeys.models import JourneyStep

    step = JourneyStep(kind=WAIT, window_start=time(11), window_end=time(20))
    berlin = ZoneInfo("Europe/Berlin")
    contact = make_contact(country="DE")
    now = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=berlin)
    got = wait_until(step, contact, now).astimezone(berlin)
    assert got.strftime("%Y-%m-%d %H:%M") == expected


def test_window_follows_the_contacts_country(make_contact):
    from campaigns.journeys.models import JourneyStep

    step = JourneyStep(kind=WAIT, window_start=time(11), window_end=time(20))
    hong_kong = make_contact(phone="+85291234567", country="HK")
    now = datetime(2026, 3, 10, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # 16:00 in HK
    assert wait_until(step, hong_kong, now) == now


def test_check_that_fails_lets_the_contact_leave(make_journey, make_contact, template):
    journey = make_journey(JourneyTrigger.JOINED, [
        (CHECK, {"expression": "purchases > 0"}), (SEND, {"template": template})])
    contact = make_contact()
    journey_enroll(journey=journey, contact_ids=[contact.pk])
    journeys_advance()
    enrollment = Enrollment.objects.get()
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED,
                                                           ExitReason.CHECK_FAILED)
    assert outcomes(contact) == [(1, Outcome.EXITED)]
    assert not Send.objects.exists()


def test_tag_step_adds_and_removes(make_journey, make_contact, make_tag):
    old, new = make_tag(name="Alt"), make_tag(name="Neu")
    journey = make_journey(JourneyTrigger.JOINED, [(TAGS, {"add": [new], "remove": [old]})])
    contact = make_contact()
    tags_change(contacts=[contact], add=[old])
    journey_enroll(journey=journey, contact_ids=[contact.pk])
    journeys_advance()
    assert list(TagAssignment.objects.filter(contact=contact).values_list(
        "tag__name", flat=True)) == ["Neu"]
    assert outcomes(contact) == [(1, Outcome.TAGGED)]


def test_a_contact_without_consent_gets_no_marketing_and_the_log_says_why(
        make_journey, make_contact, template):
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    contact = make_contact(consent_status=ConsentStatus.UNKNOWN)
    journey_enroll(journey=journey, contact_ids=[contact.pk])
    journeys_advance()
    log = EnrollmentStep.objects.get()
    assert (log.outcome, log.detail) == (Outcome.NOT_SENT, "no consent")
    assert not Send.objects.exists()


# --- exits ------------------------------------------------------------------------------------

def _two_sends(make_journey, template, tip, **exits):
    return make_journey(JourneyTrigger.JOINED, [
        (SEND, {"template": template}), (WAIT, {"wait_days": 1}), (SEND, {"template": tip})],
        **exits)


@pytest.mark.parametrize(("exits", "happen", "reason"), [
    ({"exit_on_reply": True}, {"last_reply_at": 1}, ExitReason.REPLIED),
    ({"exit_on_purchase": True}, {"last_purchase_at": 1}, ExitReason.PURCHASED),
    ({"exit_on_opt_out": True}, {"consent_status": ConsentStatus.OPTED_OUT},
     ExitReason.OPTED_OUT),
    ({"exit_on_opt_out": True}, {"is_blocked": True}, ExitReason.OPTED_OUT),
])
def test_exits(make_journey, make_contact, template, tip, exits, happen, reason):
    journey = _two_sends(make_journey, template, tip, **exits)
    contact = make_contact()
    now = timezone.now()
    journey_enroll(journey=journey, contact_ids=[contact.pk], now=now)
    journeys_advance(now=now)
    values = {k: (now + timedelta(hours=v) if k.endswith("_at") else v)
              for k, v in happen.items()}
    Contact.objects.filter(pk=contact.pk).update(**values)  # the fact, as events leave it
    journeys_advance(now=now + timedelta(days=1))
    enrollment = Enrollment.objects.get()
    assert (enrollment.status, enrollment.exit_reason) == (EnrollmentStatus.EXITED, reason)
    assert outcomes(contact)[-1] == (3, Outcome.EXITED)
    assert Send.objects.filter(contact=contact).count() == 1


def test_a_reply_does_not_end_a_journey_that_does_not_say_so(make_journey, make_contact,
                                                            template, tip):
    journey = _two_sends(make_journey, template, tip, exit_on_reply=False)
    contact = make_contact()
    now = timezone.now()
    journey_enroll(journey=journey, contact_ids=[contact.pk], now=now)
    journeys_advance(now=now)
    Contact.objects.filter(pk=contact.pk).update(last_reply_at=now + timedelta(hours=1))
    journeys_advance(now=now + timedelta(days=1))
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED


def test_no_longer_holding_the_tag_leaves(make_journey, make_contact, neukunde, template, tip,
                                          django_capture_on_commit_callbacks):
    make_journey(JourneyTrigger.TAG_ADDED, [
        (SEND, {"template": template}), (WAIT, {"wait_days": 1}), (SEND, {"template": tip})],
        trigger_tag=neukunde, exit_when_not_matching=True)
    contact = make_contact()
    change_tags(django_capture_on_commit_callbacks, contacts=[contact], add=[neukunde])
    now = timezone.now()
    journeys_advance(now=now)
    assert outcomes(contact) == [(1, Outcome.SENT), (2, Outcome.WAITING)]
    tags_change(contacts=[contact], remove=[neukunde])
    journeys_advance(now=now + timedelta(days=1))
    enrollment = Enrollment.objects.get()
    assert enrollment.exit_reason == ExitReason.NOT_MATCHING


def test_purchase_event_ends_the_winback(make_journey, make_contact, template, tip):
    journey = _two_sends(make_journey, template, tip, exit_on_purchase=True)
    contact = make_contact()
    now = timezone.now()
    journey_enroll(journey=journey, contact_ids=[contact.pk], now=now - timedelta(minutes=1))
    journeys_advance(now=now)
    events_record(events=[EventIn(kind="purchase", contact_id=contact.pk, amount=10)])
    journeys_advance(now=now + timedelta(days=1, minutes=1))
    assert Enrollment.objects.get().exit_reason == ExitReason.PURCHASED


# --- exactly once -----------------------------------------------------------------------------

def test_a_contact_enters_a_journey_once(make_journey, make_contact, neukunde, template,
                                         django_capture_on_commit_callbacks):
    make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                 trigger_tag=neukunde)
    contact = make_contact()
    for _i in range(2):
        change_tags(django_capture_on_commit_callbacks, contacts=[contact], add=[neukunde])
        change_tags(django_capture_on_commit_callbacks, contacts=[contact], remove=[neukunde])
    assert Enrollment.objects.count() == 1


def test_a_step_rerun_after_a_crash_sends_nothing_twice(make_journey, make_contact, template,
                                                       tip, outbox, monkeypatch):
    """The worker dies after the welcome was queued but before the enrollment moved on:
    after the lease, the step runs again, and the one send stays the only one."""
    journey = _two_sends(make_journey, template, tip)
    contact = make_contact()
    now = timezone.now()
    journey_enroll(journey=journey, contact_ids=[contact.pk], now=now)
    from campaigns.journeys import services

    real = services.RUNNERS[SEND]

    def send_then_die(*args):
        real(*args)
        raise SystemExit("worker killed")

    monkeypatch.setitem(services.RUNNERS, SEND, send_then_die)
    with pytest.raises(SystemExit):
        journeys_advance(now=now)
    monkeypatch.setitem(services.RUNNERS, SEND, real)
    assert journeys_advance(now=now + timedelta(seconds=1)).runs == 0  # still leased
    later = now + LEASE + timedelta(seconds=1)
    journeys_advance(now=later)
    journeys_advance(now=later + timedelta(days=1))
    assert Send.objects.filter(contact=contact).count() == 2  # welcome and tip, once each
    assert outcomes(contact) == [(1, Outcome.SENT), (2, Outcome.WAITING), (3, Outcome.SENT)]
    assert Enrollment.objects.get().status == EnrollmentStatus.COMPLETED


def test_running_an_enrollment_twice_changes_nothing(make_journey, make_contact, template):
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    contact = make_contact()
    journey_enroll(journey=journey, contact_ids=[contact.pk])
    enrollment = Enrollment.objects.select_related("journey", "contact").get()
    enrollment_run(enrollment=enrollment)
    stale = Enrollment.objects.select_related("journey", "contact").get()
    stale.position = 1  # a second worker holding an old copy
    enrollment_run(enrollment=stale)
    assert Send.objects.count() == 1 and EnrollmentStep.objects.count() == 1


def test_a_claimed_enrollment_is_not_run_by_a_second_worker(make_journey, make_contact,
                                                            template):
    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})])
    journey_enroll(journey=journey, contact_ids=[make_contact().pk])
    now = timezone.now()
    first = journeys_advance(now=now)
    second = journeys_advance(now=now)
    assert (first.runs, second.runs) == (1, 0)


def test_a_bulk_change_of_many_contacts_enters_them_all(make_journey, template, neukunde,
                                                        django_capture_on_commit_callbacks,
                                                        monkeypatch):
    from campaigns.journeys import services
    from crm.services import contacts_insert

    queued = []
    monkeypatch.setattr(services, "enqueue", lambda *args: queued.append(args))
    make_journey(JourneyTrigger.TAG_ADDED, [(SEND, {"template": template})],
                 trigger_tag=neukunde)
    contacts_insert(rows=[{"phone": f"+4915124{i:06d}"} for i in range(6_000)])
    ids = list(Contact.objects.values_list("pk", flat=True))  # more than one chunk
    change_tags(django_capture_on_commit_callbacks, contacts=ids, add=[neukunde])
    assert Enrollment.objects.count() == 6_000
    assert queued == [(services.ADVANCE_TASK,)]  # one advance for the whole change


def test_privacy_export_and_erasure_cover_journeys(make_journey, make_contact, template):
    from crm.privacy import privacy_parts, subject_of

    journey = make_journey(JourneyTrigger.JOINED, [(SEND, {"template": template})],
                           name="Willkommen")
    contact = make_contact()
    journey_enroll(journey=journey, contact_ids=[contact.pk])
    journeys_advance()
    [part] = [p for p in privacy_parts if p.name == "journeys"]
    [row] = part.export(contact)
    assert row["journey"] == "Willkommen" and row["steps"][0]["outcome"] == Outcome.SENT
    assert part.erase(subject_of(contact)) == 2
    assert not Enrollment.objects.exists() and not EnrollmentStep.objects.exists()
