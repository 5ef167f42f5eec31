import pytest
from django_celery_beat.models import PeriodicTask

from tagging.models import TagAssignment
from tagging.rules.models import Rule, RuleRun
from tagging.rules.services import rule_save
from tagging.rules.starter import rules_load_starter

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, superuser):
    client.force_login(superuser)
    return client


def form(**values):
    data = {"name": "Rule", "description": "", "enabled": "on", "priority": "100",
            "trigger": "schedule", "event_kind": "", "event_name": "", "event_product": "",
            "event_category": "", "event_min_amount": "", "schedule_every": "",
            "schedule_unit": "days", "schedule_crontab": "", "segment": "", "add_template": "",
            "template_dimension": "", "remove_dimension": "", "expires_after_days": ""}
    data.update(values)
    return data


def test_saving_a_rule_creates_its_beat_task_and_warns_about_conflicts(admin_client,
                                                                       make_contact, make_tag):
    x = make_tag(name="X")
    make_contact(purchase_count=3)
    rule_save(rule=Rule(name="Remover", segment="purchases > 2"), remove_tags=[x])
    response = admin_client.post("/admin/rules/rule/add/", form(
        name="Adder", segment="purchases > 1", add_tags=[x.pk], schedule_crontab="0 3 * * *"),
        follow=True)
    assert response.status_code == 200
    warnings = [m.message for m in response.context["messages"]]
    assert any("Remover" in w and "1 contacts" in w for w in warnings)
    assert PeriodicTask.objects.get(task="tagging.rules.tasks.rule_run_task").crontab.hour == "3"


def test_bad_input_is_shown_on_the_form_not_a_500(admin_client, make_tag):
    x = make_tag(name="Y")
    response = admin_client.post("/admin/rules/rule/add/", form(
        name="Bad", segment='"Nope" AND', add_tags=[x.pk], remove_tags=[x.pk],
        schedule_crontab="99 * * * *"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert {"segment", "remove_tags", "schedule_crontab"} <= set(errors)
    assert not Rule.objects.exists()


def test_preview_page_shows_counts_and_samples_and_run_now_applies(admin_client,
                                                                   make_contact, make_tag):
    x = make_tag(name="Stammkunde")
    contact = make_contact(purchase_count=4, first_name="Mia")
    rule = rule_save(rule=Rule(name="Regulars", segment="purchases > 3"), add_tags=[x])
    page = admin_client.get(f"/admin/rules/rule/{rule.pk}/preview/")
    assert page.status_code == 200
    assert page.context["preview"]["added"] == 1 and contact.phone in page.content.decode()
    assert not TagAssignment.objects.exists()
    admin_client.post(f"/admin/rules/rule/{rule.pk}/run/")
    assert TagAssignment.objects.get().contact == contact
    change = admin_client.get(f"/admin/rules/rule/{rule.pk}/change/").content.decode()
    assert "tw-runs" in change and "Preview" in change


def test_changelist_actions_run_and_delete_with_schedules(admin_client):
    rules_load_starter()
    assert admin_client.get("/admin/rules/rule/").status_code == 200
    ids = list(Rule.objects.values_list("pk", flat=True))
    response = admin_client.post("/admin/rules/rule/", {"action": "run_now",
                                                          "_selected_action": ids}, follow=True)
    assert "10 rules ran" in response.content.decode()
    assert RuleRun.objects.count() == 10
    assert admin_client.get("/admin/rules/rulerun/").status_code == 200
    admin_client.post("/admin/rules/rule/", {"action": "delete_rules",
                                               "_selected_action": ids})
    assert not Rule.objects.exists()
    assert not PeriodicTask.objects.filter(task="tagging.rules.tasks.rule_run_task").exists()


def test_staff_without_the_run_permission_cannot_run(client, staff_user, make_tag):
    from django.contrib.auth.models import Permission

    staff_user.user_permissions.add(Permission.objects.get(codename="view_rule"))
    client.force_login(staff_user)
    rule = rule_save(rule=Rule(name="R"), add_tags=[make_tag()])
    assert client.post(f"/admin/rules/rule/{rule.pk}/run/").status_code == 403
    assert client.get(f"/admin/rules/rule/{rule.pk}/preview/").status_code == 200
