import pytest

from tagging.models import TagAssignment
from tagging.rules.models import Rule, RuleRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_marketer_writes_a_rule_previews_it_and_runs_it(login, live_server, make_contact,
                                                          make_tag):
    regular = make_tag(name="Stammkunde")
    buyer = make_contact(first_name="Mia", purchase_count=4)
    make_contact(purchase_count=1)

    page = login()
    page.goto(f"{live_server.url}/admin/rules/rule/add/")
    page.fill("#id_name", "Stammkunden")
    page.fill("#id_segment", "purchases > 3")
    page.fill("#id_schedule_crontab", "0 3 * * *")
    page.select_option("#id_add_tags_from", label="Stammkunde")
    page.click("#id_add_tags_add")
    page.click("input[name=_continue]")
    page.wait_for_url(f"{live_server.url}/admin/rules/rule/*/change/")
    assert "was added successfully" in page.locator(".messagelist .success").inner_text()

    page.click("a.tw-preview-link")
    summary = page.locator(".tw-preview-summary").inner_text()
    assert "1 contacts match" in summary and "1 tags would be added" in summary
    assert buyer.phone in page.locator(".tw-preview").inner_text()
    assert not TagAssignment.objects.exists()

    page.click("input[value='Run now']")
    page.wait_for_url(f"{live_server.url}/admin/rules/rule/*/change/")
    assert "1 tags added" in page.locator(".messagelist").inner_text()
    assert list(TagAssignment.objects.values_list("contact_id", "tag_id")) == [
        (buyer.pk, regular.pk)]
    assert RuleRun.objects.get(rule=Rule.objects.get(name="Stammkunden")).added == 1
    assert "tw-runs" in page.content()
