import json

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from tagging.demo.contacts import seed_demo
from tagging.models import AssignmentHistory, TagAssignment
from tagging.rules.models import Rule, RuleRun, RuleTrigger
from tagging.rules.services import (
    rule_conflicts,
    rule_preview,
    rule_run,
    rule_save,
    rule_validate,
    rules_delete,
    rules_run,
    template_render,
)
from tagging.rules.starter import rules_load_starter
from tagging.services import tags_change

pytestmark = pytest.mark.django_db


def make_rule(name, segment="", add=(), remove=(), **options):
    return rule_save(rule=Rule(name=name, segment=segment, **options), add_tags=list(add),
                     remove_tags=list(remove))


def assignments():
    return set(TagAssignment.objects.values_list("contact_id", "tag_id"))


@pytest.fixture
def demo():
    seed_demo(contacts=400, seed=5)
    rules_load_starter()
    return list(Rule.objects.filter(trigger=RuleTrigger.SCHEDULE).order_by("-priority", "name"))


def test_preview_changes_nothing_and_equals_the_real_run(demo):
    for rule in demo:
        before, history = assignments(), AssignmentHistory.objects.count()
        preview = rule_preview(rule=rule)
        assert assignments() == before and AssignmentHistory.objects.count() == history
        outcome = rule_run(rule=rule)
        assert (preview["matched"], preview["added"], preview["removed"]) == \
            (outcome.matched, outcome.added, outcome.removed), rule.name
        changed = set(AssignmentHistory.objects.filter(operation=outcome.operation)
                      .values_list("contact_id", flat=True))
        for change in preview["changes"]:
            assert {p["id"] for p in change["sample"]} <= changed
    assert any(RuleRun.objects.filter(added__gt=0))


def test_a_second_run_changes_nothing(demo):
    first = rules_run(rules=demo)
    history = AssignmentHistory.objects.count()
    second = rules_run(rules=demo)
    assert sum(o.added + o.removed for o in first) > 0
    assert [(o.added, o.removed) for o in second] == [(0, 0)] * len(demo)
    assert AssignmentHistory.objects.count() == history


def test_every_run_is_logged_with_counts_and_errors(make_contact, make_tag):
    tag = make_tag()
    make_contact(purchase_count=5)
    rule = make_rule("Buyers", "purchases > 1", add=[tag])
    rule_run(rule=rule)
    run = RuleRun.objects.get()
    assert (run.matched, run.added, run.removed, run.errors) == (1, 1, 0, "")
    tag.is_archived = True
    tag.save()
    TagAssignment.objects.all().delete()
    outcome = rule_run(rule=rule)
    assert "Archived" in outcome.errors
    assert RuleRun.objects.filter(errors__contains="Archived").count() == 1


def test_a_lower_priority_rule_never_undoes_a_higher_one_in_the_same_run(make_contact, make_tag):
    x = make_tag(name="X")
    frequent, holder, single = (make_contact(purchase_count=n) for n in (2, 2, 1))
    tags_change(contacts=[holder], add=[x])
    strict = make_rule("Strict", "purchases > 1", remove=[x], priority=200)
    loose = make_rule("Loose", "purchases > 0", add=[x], priority=100)
    conflicts = rule_conflicts(rule=loose)
    assert [c.other.name for c in conflicts] == ["Strict"] and conflicts[0].overlap == 2
    assert not conflicts[0].this_wins and "Strict" in conflicts[0].message

    rules_run(rules=[strict, loose])

    holding = set(TagAssignment.objects.filter(tag=x).values_list("contact_id", flat=True))
    assert holding == {single.pk}
    assert AssignmentHistory.objects.filter(contact=holder).count() == 2  # given, removed once
    assert not AssignmentHistory.objects.filter(contact=frequent).exists()


def test_no_conflict_is_reported_for_disjoint_audiences_or_same_direction(make_contact,
                                                                          make_tag):
    x = make_tag()
    make_contact(purchase_count=1)
    make_rule("Adds", "purchases > 3", add=[x])
    remover = make_rule("Removes", "purchases < 2", remove=[x])
    make_rule("Adds too", "purchases < 2", add=[make_tag()])
    assert rule_conflicts(rule=remover) == []


def test_a_rule_cannot_add_and_remove_the_same_tag(make_tag):
    x = make_tag(name="Twice")
    problems = rule_validate(Rule(name="r"), [x], [x])
    assert "Twice" in problems["remove_tags"]


def rule_tasks():
    """The beat entries rules made (other apps ship their own schedules)."""
    return PeriodicTask.objects.filter(task="tagging.rules.tasks.rule_run_task")


def test_the_rule_keeps_its_beat_task_in_step():
    rule = make_rule("Nightly", schedule_crontab="0 3 * * *")
    task = rule_tasks().get()
    assert (task.crontab.hour, json.loads(task.args), task.enabled) == ("3", [rule.pk], True)
    assert task.task == "tagging.rules.tasks.rule_run_task"
    rule.schedule_crontab, rule.schedule_every, rule.enabled = "", 2, False
    rule_save(rule=rule)
    task.refresh_from_db()
    assert (task.crontab, task.interval.every, task.enabled) == (None, 2, False)
    rule.trigger, rule.event_kind = RuleTrigger.EVENT, "purchase"
    rule_save(rule=rule)
    assert not rule_tasks().exists()
    rule.trigger = RuleTrigger.SCHEDULE
    rule_save(rule=rule)
    rules_delete(rules=Rule.objects.all())
    assert not rule_tasks().exists() and not Rule.objects.exists()


def test_placeholders_render_dates_and_products():
    from datetime import datetime

    from django.utils import timezone

    when = timezone.make_aware(datetime(2025, 3, 9, 12))
    assert template_render("Gekauft {date} {product}", when=when, product="Puder") == \
        "Gekauft 2025-03-09 Puder"
    assert template_render("Gekauft {date:%Y-%m}  {product}", when=when) == "Gekauft 2025-03"
    problems = rule_validate(Rule(name="r", trigger=RuleTrigger.SCHEDULE,
                                  add_template="Kauf {product}"))
    assert "product" in problems["add_template"] and "template_dimension" in problems


def test_a_scheduled_template_tag_is_created_in_its_dimension(make_contact, make_dimension):
    dimension = make_dimension(name="Aktionen")
    make_contact(purchase_count=2)
    rule = make_rule("Monthly", "purchases > 1", add_template="Käufer {date:%Y}",
                     template_dimension=dimension)
    assert rule_preview(rule=rule)["added"] == 1
    assert rule_run(rule=rule).added == 1
    assert TagAssignment.objects.get().tag.dimension == dimension


def test_run_rules_command_dry_run_and_json(demo, capsys):
    before = assignments()
    call_command("run_rules", "--dry-run", "--json")
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] and len(data["rules"]) == len(demo)
    assert assignments() == before and not RuleRun.objects.exists()
    call_command("run_rules", "--rule", demo[0].name, "--json")
    ran = json.loads(capsys.readouterr().out)["rules"]
    assert [r["rule"] for r in ran] == [demo[0].name]
    assert RuleRun.objects.count() == 1
    with pytest.raises(CommandError, match="No rule named"):
        call_command("run_rules", "--rule", "Nope")
    with pytest.raises(CommandError, match="event rules"):
        call_command("run_rules", "--rule", Rule.objects.filter(trigger="event")[0].name)


def test_load_starter_rules_command_is_idempotent(capsys):
    call_command("load_starter_rules", "--json")
    call_command("load_starter_rules", "--json")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["created"], second["created"], second["existing"]) == (12, 0, 12)
    assert rule_tasks().count() == 10  # the two event rules need no schedule


def test_event_rule_filters_on_category(make_contact, make_tag,
                                        django_capture_on_commit_callbacks):
    from crm.events import EventIn, events_record

    lipstick = make_tag(name="Lippenstift-Käufer")
    make_rule("Lipstick", add=[lipstick], trigger=RuleTrigger.EVENT, event_kind="purchase",
              event_category="lippenstift")
    a, b = make_contact(), make_contact()
    with django_capture_on_commit_callbacks(execute=True):
        events_record(events=[
            EventIn(kind="purchase", contact_id=a.pk, category="Lippenstift"),
            EventIn(kind="purchase", contact_id=b.pk, category="Puder")])
    assert set(TagAssignment.objects.values_list("contact_id", flat=True)) == {a.pk}
    assert RuleRun.objects.get().trigger == "event"


def test_an_event_rule_never_runs_over_its_whole_audience(make_contact, make_tag):
    make_contact()
    rule = make_rule("Cart", add=[make_tag()], trigger=RuleTrigger.EVENT,
                     event_kind="cart_abandoned")
    outcome = rule_run(rule=rule)
    assert "events arrive" in outcome.errors and not TagAssignment.objects.exists()


def test_a_later_rule_does_not_replace_a_single_choice_tag_just_set(make_contact,
                                                                   make_dimension, make_tag):
    stage = make_dimension(name="Stufe", single_choice=True)
    gold, silver = make_tag(name="Gold", dimension=stage), make_tag(name="Silber",
                                                                   dimension=stage)
    both, small = make_contact(purchase_count=5), make_contact(purchase_count=1)
    first = make_rule("Gold first", "purchases > 3", add=[gold], priority=200)
    second = make_rule("Silver", "purchases > 0", add=[silver], priority=100)

    rules_run(rules=[first, second])

    held = dict(TagAssignment.objects.values_list("contact_id", "tag__name"))
    assert held == {both.pk: "Gold", small.pk: "Silber"}
    assert AssignmentHistory.objects.filter(contact=both).count() == 1


def test_a_scheduled_rule_reads_its_audience_once(make_contact, make_tag):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    keep, drop = make_tag(name="Stammkunde"), make_tag(name="Gelegenheitskunde")
    buyer, other = make_contact(purchase_count=5), make_contact(purchase_count=0)
    tags_change(contacts=[buyer, other], add=[drop])
    rule = make_rule("Buyers", "purchases > 3", add=[keep], remove=[drop])

    with CaptureQueriesContext(connection) as queries:
        outcome = rule_run(rule=rule)

    assert (outcome.matched, outcome.added, outcome.removed) == (1, 1, 1)
    held = set(TagAssignment.objects.values_list("contact_id", "tag__name"))
    assert held == {(buyer.pk, "Stammkunde"), (other.pk, "Gelegenheitskunde")}
    # The audience's expression ran once, not once for the count and once more per tag.
    assert sum("purchase_count" in q["sql"] for q in queries.captured_queries) == 1
