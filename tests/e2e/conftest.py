"""Real-browser tests: Playwright driving Debian's Chromium against the live test server."""

from __future__ import annotations

import os
import shutil
from importlib import import_module

import pytest
from django.apps import apps
from playwright.sync_api import expect

from tests.conftest import require_service
from tests.factories import UserFactory

# Playwright's sync API runs an event loop in this thread; the ORM calls made by
# the tests themselves are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
# The same patience for expect() as for actions: a loaded CI machine answers slowly.
expect.set_options(timeout=10_000)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "e2e-password-123"


@pytest.fixture(scope="session")
def browser():
    require_service(os.path.exists(CHROMIUM),
                    "Chromium is not installed; run `apt-get install chromium`.")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def login(browser, live_server):
    """Return ``login(user) -> page``: a logged-in admin page in a fresh browser context."""
    contexts = []

    def _login(user=None):
        # Transactional tests flush the theme the migration installed: put it back, so the
        # browser sees the admin as users do.
        import_module("crm.migrations.0002_admin_theme").install_theme(apps, None)
        user = user or UserFactory(is_superuser=True, is_staff=True, password=PASSWORD)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_server.url}/admin/")
        return page

    yield _login
    for context in contexts:
        context.close()
