"""How entry points plug into inbound WhatsApp messages (wired in ``EntryPointsConfig.ready``).

``contact_for_arrival`` is asked for the contact of a message from a number we do
not know: when the message arrives through an entry point, the contact is
created from its ``wa_id``. ``on_inbound_message`` runs once per stored inbound
message (a re-delivered webhook is not stored again) and applies its entry points.
"""

from __future__ import annotations

from campaigns.entrypoints.selectors import entry_points_for_message
from campaigns.entrypoints.services import ArrivalIn, arrival_apply
from campaigns.models import InboundMessage
from campaigns.webhook_input import MessageIn
from crm.models import Contact
from crm.phones import try_normalize_phone
from crm.services import contacts_ensure

# Set on a contact created for an arrival, read when the same message is applied.
CREATED_FLAG = "_entrypoints_created"


def contact_for_arrival(message: MessageIn) -> Contact | None:
    """The new contact of a message that arrives through an entry point; else None."""
    phone = try_normalize_phone("+" + message.wa_id.lstrip("+")) if message.wa_id else None
    if phone is None or not entry_points_for_message(message.payload, message.text,
                                                     message.occurred_at):
        return None
    ids, created = contacts_ensure(phones=[phone])
    contact = Contact.objects.get(pk=ids[phone])
    setattr(contact, CREATED_FLAG, bool(created))
    return contact


def on_inbound_message(sender, *, contact: Contact, message: MessageIn, inbound: InboundMessage,
                       **kwargs) -> str:
    """Apply every entry point the message arrives through; a note for the message's action."""
    names = []
    for entry_point in entry_points_for_message(message.payload, message.text,
                                                inbound.occurred_at):
        done = arrival_apply(arrival=ArrivalIn(
            entry_point=entry_point, contact=contact, message_id=inbound.message_id,
            occurred_at=inbound.occurred_at, new_contact=getattr(contact, CREATED_FLAG, False),
            referral=message.payload.get("referral")))
        if done is not None:
            names.append(entry_point.name)
    return "entry point: " + ", ".join(names) if names else ""
