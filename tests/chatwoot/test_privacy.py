"""The customer's Chatwoot link and sync notes are exported and erased with them."""

from __future__ import annotations

from campaigns.chatwoot.models import ContactLink, SyncNote
from campaigns.chatwoot.services import contact_link, sync_note_add
from crm.privacy import contact_erase, contact_export
from tests.factories import ContactFactory


def test_links_and_notes_are_exported_and_erased_with_the_customer(connection):
    contact, other = ContactFactory(), ContactFactory()
    contact_link(connection=connection, contact=contact, chatwoot_id=101)
    contact_link(connection=connection, contact=other, chatwoot_id=102)
    sync_note_add(connection=connection, contact=contact, agent="alice",
                  message="alice may not change these tags …")

    exported = contact_export(contact)["chatwoot"]
    assert {"connection": "Support", "chatwoot_contact_id": 101} in exported
    assert any(row.get("agent") == "alice" for row in exported)

    erasure = contact_erase(contact=contact, via="admin")
    assert erasure.removed["chatwoot"] == 2
    assert not ContactLink.objects.filter(contact_id=contact.pk).exists()
    assert not SyncNote.objects.exists()
    assert ContactLink.objects.filter(contact=other, chatwoot_id=102).exists()
