"""Wrong passwords are throttled per username and address; the lockout says what to do."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _login(client, password: str, address: str = "198.51.100.7"):
    return client.post(reverse("admin:login"), {"username": "lena", "password": password},
                       REMOTE_ADDR=address)


@pytest.fixture
def lena(django_user_model):
    return django_user_model.objects.create_user("lena", password="right-horse-battery",
                                                 is_staff=True)


def test_wrong_passwords_lock_the_login_with_a_readable_page(client, lena, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200  # the login form again, with its error
    locked = _login(client, "wrong")
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed logins" in text
    assert "Try again in 15 minutes" in text
    # While locked, even the right password is refused.
    assert _login(client, "right-horse-battery").status_code == 429


def test_the_lock_holds_one_username_at_one_address(client, lena, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "wrong")
    response = _login(client, "right-horse-battery", address="203.0.113.9")
    assert response.status_code == 302  # another address logs in


def test_a_right_password_before_the_limit_resets_the_count(client, lena, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong")
    assert _login(client, "right-horse-battery").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200


def test_the_lockout_page_uses_the_admin_look_and_leads_back(client, lena, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = _login(client, "wrong")
    text = response.content.decode()
    assert 'id="header"' in text
    assert f'href="{reverse("admin:login")}"' in text
