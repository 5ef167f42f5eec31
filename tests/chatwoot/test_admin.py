"""The connection's admin page: the addresses to paste into Chatwoot and the label names."""

from __future__ import annotations

from django.urls import reverse

from tests.factories import TagFactory


def test_the_connection_page_shows_the_addresses_and_each_tags_label(
        client, superuser, connection, vocabulary):
    TagFactory(dimension=vocabulary["interest"], name="高价值 客户")
    TagFactory(dimension=vocabulary["interest"], name="Make-up?")  # would share make-up
    client.force_login(superuser)
    page = client.get(reverse("admin:chatwoot_chatwootconnection_change",
                              args=[connection.pk])).content.decode()
    assert "/chatwoot/sidebar/" in page and "id_webhook_secret" in page
    assert f"/webhooks/chatwoot/{connection.webhook_token}/" in page
    assert "<td>Make-up</td><td><code>make-up</code>" in page
    assert "<td>高价值 客户</td><td><code>高价值-客户</code>" in page
    assert "<td>Make-up?</td><td><code>make-up-" in page
    assert "<td>Paid</td><td><code>paid</code>" in page
    assert "TikTok" not in page.split('id="chatwoot-labels"')[1].split("</table>")[0]
