import pytest

from tagging.services import tags_change

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_admin_logs_in_and_sees_contacts_with_tag_chips(login, live_server, make_contact,
                                                        make_tag):
    contact = make_contact(first_name="Mei", last_name="Chen", phone="+85291234567")
    tags_change(contacts=[contact], add=[make_tag(name="Interesse-Make-up", symbol="♥")])

    page = login()
    page.goto(f"{live_server.url}/admin/crm/contact/?q=00852%209123-4567")

    row = page.locator("#result_list tbody tr")
    assert row.count() == 1
    assert "+85291234567" in row.inner_text()
    chip = row.locator(".tw-chip")
    assert chip.inner_text() == "♥ Interesse-Make-up"
    assert chip.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(51, 102, 153)"
