"""The marketer's week in German and in Chinese, in a real browser (issue #16).

Dashboard → expression and count → Manage tags → a contact's page and timeline → an import
and its report → a rule preview → a campaign from creation to report → a refusal page.
Selectors do not depend on English text; the strings translated with issue #16 are
asserted in each language. ``TAGWERK_UPDATE_SCREENSHOTS=1`` writes the screenshots of the
dashboard, the contact list and a campaign report to docs/ui/ (the README shows them).
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from campaigns.backends.sandbox import sandbox_flush
from campaigns.models import Campaign, OptOutKeyword
from campaigns.services import template_create
from tagging.demo.contacts import seed_demo
from tagging.demo.history import demo_history_spread
from tagging.insight.services import dashboard_snapshot_refresh, health_report_create
from tagging.models import TagAssignment
from tagging.roles import MARKETERS, roles_sync
from tagging.rules.models import Rule
from tagging.rules.starter import rules_load_starter
from tests.e2e.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UPDATE_SCREENSHOTS = os.environ.get("TAGWERK_UPDATE_SCREENSHOTS") == "1"
DOCS = Path(__file__).resolve().parent.parent.parent / "docs" / "ui"

LANGUAGES = {
    # browser locale: (demo language, a VIP-like tag, words of this language on our pages)
    "de-DE": ("de", "VIP", {"dashboard": "Diese Woche auf einen Blick",
                            "selected": "Kontakte ausgewählt", "timeline": "Verlauf",
                            "prelaunch": "Vor dem Start", "refusal": "Nur Tag-Administratoren",
                            "reason": "ungültige Telefonnummer"}),
    "zh-CN": ("zh-hans", "VIP", {"dashboard": "本周概览", "selected": "位联系人",
                                 "timeline": "时间线", "prelaunch": "启动前",
                                 "refusal": "只有标签管理员", "reason": "电话号码无效"}),
}


@pytest.fixture
def open_as(browser, live_server):
    contexts = []

    def _open(user, locale: str, width: int = 1400):
        context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        return page

    yield _open
    for context in contexts:
        context.close()


def shoot(page, name: str, tmp_path: Path, locator: str | None = None) -> None:
    path = tmp_path / name
    (page.locator(locator) if locator else page).screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if UPDATE_SCREENSHOTS:
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS / name)


def no_clipping(page) -> bool:
    """The list shows every column: its box is as wide as its table."""
    return page.evaluate("""() => { const r = document.querySelector('#changelist .results');
        return r.scrollWidth <= r.clientWidth + 1; }""")


@pytest.mark.parametrize("locale", list(LANGUAGES))
def test_the_weekly_workflow(open_as, live_server, locale, tmp_path, settings):
    language, vip, words = LANGUAGES[locale]
    settings.WHATSAPP_BACKEND = "campaigns.backends.sandbox.SandboxBackend"
    settings.WHATSAPP_APP_SECRET = "e2e-secret"
    roles_sync()  # transactional tests flush the groups the migrations made
    OptOutKeyword.objects.get_or_create(word="STOP")
    seed_demo(contacts=400, seed=11, language=language)
    rules_load_starter(language=language)
    demo_history_spread(seed=11)
    health_report_create()
    dashboard_snapshot_refresh()
    admin_user = UserFactory(is_superuser=True, is_staff=True, password=PASSWORD)
    page = open_as(admin_user, locale)
    url = live_server.url

    # 1. The dashboard, in the reader's language, with the churn chart explained.
    assert words["dashboard"] in page.locator("#tw-dashboard h1").inner_text()
    assert page.locator("#kpi-contacts").inner_text().replace(".", "").replace(",", "") == "400"
    assert page.locator("#tw-churn-definition").is_visible()
    shoot(page, f"dashboard-{language}.png", tmp_path, "#tw-dashboard")

    # 2. An expression with its live count; the error box stays away while all is well.
    page.goto(f"{url}/admin/crm/contact/")
    assert no_clipping(page)
    assert not page.locator("#tw-expr-error").is_visible()
    page.locator("#tw-vocabulary summary").click()
    page.locator(f"#tw-vocabulary .tw-chip[data-insert='\"{vip}\"']").click()
    assert page.locator("#tw-expr").input_value() == f'"{vip}"'
    page.wait_for_function("() => /\\d/.test(document.querySelector('#tw-count').textContent)")
    holders = TagAssignment.objects.filter(tag__name=vip).count()
    assert str(holders) in page.locator("#tw-count").inner_text().replace(".", "")
    page.locator("#tw-audience input[type=submit]").click()
    page.wait_for_url("**/?expr=*")
    assert no_clipping(page)
    shoot(page, f"contacts-{language}.png", tmp_path)

    # 3. Manage tags on every match: the selection's size first, then a chip, then the effect.
    page.check("#action-toggle")
    page.select_option("select[name=action]", "manage_tags")
    page.click("button[name=index]")
    assert words["selected"] in page.locator("#tw-selection-size").inner_text()
    group = page.locator(".tw-picker-group").nth(4)  # the activity dimension
    group.locator(".tw-pick-add input").first.check()
    page.fill("#tw-picker-search", "zzz-nothing")
    assert page.locator(".tw-pick:visible").count() == 0
    page.fill("#tw-picker-search", "")
    page.click("#tw-preview-button")
    page.wait_for_selector("#tw-preview tbody tr")
    page.click("#tw-apply")
    page.wait_for_selector(".messagelist .success")

    # 4. A contact's page: tags by dimension, and the timeline with the change just made.
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_selector("#tw-timeline")
    assert words["timeline"] in page.locator("#tw-timeline h2").inner_text()
    assert page.locator("#tw-timeline li[data-kind=tag]").count() >= 1

    # 5. An import with its report: reasons are sentences in the reader's language.
    csv = tmp_path / "list.csv"
    csv.write_text(f"phone,tags\n+4915123999001,{vip}\n+4915123999002,{vip}\n12,{vip}\n",
                   encoding="utf-8")
    page.goto(f"{url}/admin/imports/importjob/add/")
    assert page.locator("input[name=_addanother]").count() == 0
    page.set_input_files("#id_file", str(csv))
    page.check("input[name=consent_basis][value=opted_in]")
    page.fill("#id_consent_source", "Messe 2026")
    page.click("input[name=_save]")
    page.wait_for_selector("#tw-confirm")
    assert words["reason"] in page.locator("#tw-preview-counts").inner_text()
    page.click("#tw-confirm")
    report = page.locator("#tw-report")
    report.wait_for()
    assert report.locator("[data-key=created]").inner_text() == "2"
    assert "invalid_phone" not in report.inner_text()

    # 6. A starter rule's preview, in the demo's vocabulary.
    rule = Rule.objects.get(starter_key="starter-2")
    page.goto(f"{url}/admin/rules/rule/{rule.pk}/change/")
    page.click("a.tw-preview-link")
    page.wait_for_selector(".tw-preview-summary")

    # 7. A campaign from creation to report, launched from its own page.
    template_create(name="spring_offer", language=language[:2],
                    body="Hallo {{1}}! Antworte STOP zum Abmelden.",
                    variables=["salutation_last_name"])
    page.goto(f"{url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", f"Frühling {language}")
    page.select_option("#id_template", index=1)
    page.fill("#id_audience", f'"{vip}"')
    page.fill("#id_rate_per_second", "200")
    page.click("input[name=_continue]")
    page.wait_for_selector("#tw-prelaunch")
    assert words["prelaunch"] in page.locator("#tw-prelaunch h2").inner_text()
    audience = int(page.locator("#tw-audience-size").get_attribute("data-value"))
    recipients = int(page.locator("#tw-recipients").get_attribute("data-value"))
    assert audience >= recipients > 0
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#tw-launch")
    page.wait_for_selector(".messagelist .success")
    campaign = Campaign.objects.get(name=f"Frühling {language}")
    sandbox_flush(now=timezone.now() + timedelta(minutes=1))
    page.goto(f"{url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.locator('#campaign-report td[data-key="recipients"]').inner_text() == \
        str(recipients)
    assert page.locator("#tw-prelaunch").count() == 0
    shoot(page, f"campaign-report-{language}.png", tmp_path, "#campaign-report")

    # 8. A refusal page: a marketer may not define tags; it says who can, and links back.
    marketer = UserFactory(is_staff=True, password=PASSWORD)
    marketer.groups.add(*Group.objects.filter(name=MARKETERS))
    other = open_as(marketer, locale)
    response = other.goto(f"{url}/admin/tagging/tag/add/")
    assert response.status == 403
    assert words["refusal"] in other.locator(".tw-refusal").inner_text()
    other.click("#tw-back")
    other.wait_for_url(f"{url}/admin/**")


def test_no_column_is_cut_at_1280_px_and_page_numbers_are_readable(open_as, live_server):
    seed_demo(contacts=120, seed=3)
    admin_user = UserFactory(is_superuser=True, is_staff=True, password=PASSWORD)
    page = open_as(admin_user, "de-DE", width=1280)
    page.goto(f"{live_server.url}/admin/crm/contact/")
    assert no_clipping(page)
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert len(headers) >= 7  # checkbox, phone, name, tags, consent, country, last interaction
    colours = page.evaluate("""() => { const s = getComputedStyle(
        document.querySelector('.paginator .this-page'));
        return [s.color, s.backgroundColor]; }""")
    assert colours[0] == "rgb(255, 255, 255)" and colours[1] != "rgba(0, 0, 0, 0)"
    page.goto(f"{live_server.url}/admin/rules/rule/")
    assert page.locator("#changelist").count() == 1
