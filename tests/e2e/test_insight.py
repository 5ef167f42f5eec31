"""The dashboard and a health report in a real browser, on the demo data.

``TAGWERK_UPDATE_SCREENSHOTS=1`` also writes the dashboard screenshot to
docs/dashboard.png (the README shows it).
"""

import os
import shutil
from pathlib import Path

import pytest

from tagging.demo.contacts import seed_demo
from tagging.demo.history import demo_history_spread
from tagging.insight.services import dashboard_snapshot_refresh, health_report_create

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UPDATE_SCREENSHOT = os.environ.get("TAGWERK_UPDATE_SCREENSHOTS") == "1"
DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


def test_dashboard_and_health_report_in_the_browser(login, live_server, tmp_path):
    seed_demo(contacts=2000 if UPDATE_SCREENSHOT else 600, seed=8)
    demo_history_spread()
    report = health_report_create()
    dashboard_snapshot_refresh()

    page = login()
    page.goto(f"{live_server.url}/admin/")

    assert page.locator("#kpi-contacts").inner_text() == ("2000" if UPDATE_SCREENSHOT else "600")
    assert page.locator("#tw-dashboard svg.tw-chart").count() >= 9
    kaufkraft = page.locator(".tw-dimension", has_text="Kaufkraft")
    assert kaufkraft.locator("rect[fill='#B8860B']").count() >= 3  # bars in the tag colour
    assert page.locator("#tw-health li").first.inner_text().endswith("active tags (healthy).")
    shot = tmp_path / "dashboard.png"
    page.locator("#tw-dashboard").screenshot(path=str(shot))
    assert shot.stat().st_size > 30_000
    if UPDATE_SCREENSHOT:
        shutil.copy(shot, DOCS / "dashboard.png")

    page.click("text=Open the report")
    page.wait_for_url(f"{live_server.url}/admin/insight/healthreport/{report.pk}/change/")
    assert "overloaded" in page.locator("#finding-overloaded h2").inner_text()
    assert page.locator("#finding-stale").get_by_text("show contacts").count() > 0
    assert page.locator("#move-sleeping-vips").is_visible()

    page.locator("#finding-stale").get_by_text("show contacts").first.click()
    page.wait_for_url("**/admin/crm/contact/?insight_tag=*")
    assert page.locator("#result_list tbody tr").count() > 0
