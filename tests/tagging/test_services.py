from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Contact
from tagging.models import AssignmentHistory, Source, TagAssignment
from tagging.permissions import TagPermissionDenied
from tagging.services import (
    TagChangeError,
    expired_assignments_remove,
    operation_undo,
    tags_change,
    tags_change_pairs,
)
from tagging.signals import tags_changed

pytestmark = pytest.mark.django_db


def holders(tag) -> set[int]:
    return set(TagAssignment.objects.filter(tag=tag).values_list("contact_id", flat=True))


def test_add_and_remove_in_one_step_with_history(make_contact, make_tag, superuser):
    contacts = make_contact.create_batch(3)
    potential, inactive = make_tag(name="Hohes Potenzial"), make_tag(name="Inaktiver Kunde")
    tags_change(contacts=contacts[:2], add=[inactive], source=Source.SYSTEM)

    result = tags_change(contacts=Contact.objects.all(), add=[potential], remove=[inactive],
                         actor=superuser, source=Source.BULK, source_ref="bulk:1")

    assert (result.added, result.removed, result.replaced) == (3, 2, 0)
    assert holders(potential) == {c.pk for c in contacts}
    assert holders(inactive) == set()
    rows = AssignmentHistory.objects.filter(operation=result.operation)
    assert sorted(rows.values_list("action", flat=True)) == ["added"] * 3 + ["removed"] * 2
    assert set(rows.values_list("reason", "source_ref", "actor_id")) == {
        ("bulk", "bulk:1", superuser.pk)}


def test_repeating_a_change_changes_nothing(make_contact, make_tag):
    contacts, tag = make_contact.create_batch(2), make_tag()
    tags_change(contacts=contacts, add=[tag])
    again = tags_change(contacts=contacts, add=[tag])
    assert (again.added, again.changed) == (0, False)
    assert AssignmentHistory.objects.count() == 2


def test_single_choice_dimension_replaces_previous_tag(make_contact, make_dimension, make_tag):
    stage = make_dimension(name="Kaufphase", single_choice=True)
    cart, ordered = make_tag(dimension=stage, name="Warenkorbabbruch"), make_tag(
        dimension=stage, name="Bestellt")
    other = make_tag(name="VIP")
    contact = make_contact()
    tags_change(contacts=[contact], add=[cart, other])

    result = tags_change(contacts=[contact], add=[ordered])

    assert (result.added, result.replaced) == (1, 1)
    assert set(contact.tags.values_list("name", flat=True)) == {"Bestellt", "VIP"}
    replaced = AssignmentHistory.objects.get(operation=result.operation, action="removed")
    assert (replaced.tag, replaced.replaced) == (cart, True)


def test_two_tags_of_one_single_choice_dimension_are_refused(make_contact, make_dimension,
                                                              make_tag):
    stage = make_dimension(single_choice=True)
    a, b = make_tag(dimension=stage), make_tag(dimension=stage)
    with pytest.raises(TagChangeError, match="pick one"):
        tags_change(contacts=[make_contact()], add=[a, b])
    assert TagAssignment.objects.count() == 0


def test_archived_tags_cannot_be_applied(make_contact, make_tag):
    with pytest.raises(TagChangeError, match="Archived"):
        tags_change(contacts=[make_contact()], add=[make_tag(is_archived=True)])


def test_user_without_rights_is_refused_before_anything_changes(make_contact, make_tag,
                                                                 staff_user):
    contact, allowed = make_contact(), make_tag(name="Allowed")
    with pytest.raises(TagPermissionDenied, match="Allowed"):
        tags_change(contacts=[contact], add=[allowed], actor=staff_user)
    assert TagAssignment.objects.count() == 0


def test_lifetime_gives_each_assignment_an_expiry_and_expiry_removes_it(make_contact, make_tag):
    contact = make_contact()
    short = make_tag(lifetime_days=30)
    tags_change(contacts=[contact], add=[short])
    assignment = TagAssignment.objects.get()
    assert assignment.expires_at - timezone.now() > timedelta(days=29, hours=23)

    assert expired_assignments_remove(now=timezone.now() + timedelta(days=29)) == 0
    assert expired_assignments_remove(now=timezone.now() + timedelta(days=31)) == 1
    assert not TagAssignment.objects.exists()
    assert AssignmentHistory.objects.filter(action="removed", reason="expiry").count() == 1


def test_undo_restores_exactly_what_the_operation_changed(make_contact, make_tag):
    contacts = make_contact.create_batch(4)
    new, old = make_tag(), make_tag()
    tags_change(contacts=contacts[:2], add=[old])
    tags_change(contacts=contacts[3:], add=[new])  # already held before the operation

    change = tags_change(contacts=contacts, add=[new], remove=[old])
    undo = operation_undo(operation=change.operation)

    assert (undo.added, undo.removed) == (2, 3)
    assert holders(old) == {contacts[0].pk, contacts[1].pk}
    assert holders(new) == {contacts[3].pk}
    second = operation_undo(operation=change.operation)
    assert (second.added, second.removed) == (0, 0)


def test_signal_is_sent_once_per_operation(make_contact, make_tag,
                                           django_capture_on_commit_callbacks):
    received = []

    def listener(sender, result, **kwargs):
        received.append(result)

    tags_changed.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tags_change(contacts=make_contact.create_batch(5), add=[make_tag()])
    finally:
        tags_changed.disconnect(listener)
    assert [r.added for r in received] == [5]


def test_large_selections_are_processed_in_batches(make_tag, monkeypatch):
    from tagging import services

    monkeypatch.setattr(services, "BATCH_SIZE", 7)
    Contact.objects.bulk_create(Contact(phone=f"+4915123{n:06d}") for n in range(50))
    seen = []
    result = tags_change(contacts=Contact.objects.all(), add=[make_tag()],
                         progress=lambda done, total: seen.append((done, total)))
    assert result.added == 50
    assert seen[-1] == (50, 50) and len(seen) == 8


# --- tags_change_pairs: each contact its own tags (an import's batch) -------------------


def test_pairs_add_and_remove_per_contact_with_replacement_lifetime_and_history(
        make_contact, make_dimension, make_tag, superuser):
    stage = make_dimension(name="Kaufphase", single_choice=True)
    cart, ordered = make_tag(dimension=stage, name="Warenkorbabbruch"), make_tag(
        dimension=stage, name="Bestellt")
    vip, short = make_tag(name="VIP"), make_tag(name="Kurz", lifetime_days=30)
    a, b, c = make_contact.create_batch(3)
    tags_change(contacts=[a, b], add=[cart, vip])

    result = tags_change_pairs(add={ordered: [a.pk], short: [b.pk, c.pk], vip: [a.pk]},
                               remove={vip: [b.pk]}, actor=superuser, source=Source.IMPORT,
                               source_ref="import:9")

    assert (result.added, result.removed, result.replaced) == (3, 1, 1)  # vip on a: held
    assert set(a.tags.values_list("name", flat=True)) == {"Bestellt", "VIP"}
    assert set(b.tags.values_list("name", flat=True)) == {"Warenkorbabbruch", "Kurz"}
    assert set(c.tags.values_list("name", flat=True)) == {"Kurz"}
    expiries = TagAssignment.objects.filter(tag=short).values_list("expires_at", flat=True)
    assert all(e - timezone.now() > timedelta(days=29, hours=23) for e in expiries)
    assert TagAssignment.objects.get(contact=a, tag=ordered).expires_at is None
    rows = AssignmentHistory.objects.filter(operation=result.operation)
    assert sorted(rows.values_list("action", "replaced")) == [
        ("added", False)] * 3 + [("removed", False), ("removed", True)]
    assert set(rows.values_list("reason", "source_ref", "actor_id")) == {
        ("import", "import:9", superuser.pk)}
    undone = operation_undo(operation=result.operation)
    assert (undone.added, undone.removed) == (2, 3)
    assert set(b.tags.values_list("name", flat=True)) == {"Warenkorbabbruch", "VIP"}


def test_pairs_refuse_before_anything_changes(make_contact, make_dimension, make_tag,
                                              staff_user):
    stage = make_dimension(name="Kaufphase", single_choice=True)
    cart, ordered = make_tag(dimension=stage, name="Warenkorbabbruch"), make_tag(
        dimension=stage, name="Bestellt")
    contact, other = make_contact(), make_contact()
    with pytest.raises(TagChangeError, match="single-choice"):
        tags_change_pairs(add={cart: [contact.pk, other.pk], ordered: [contact.pk]})
    with pytest.raises(TagChangeError, match="Archived"):
        tags_change_pairs(add={cart: [other.pk], make_tag(is_archived=True): [contact.pk]})
    with pytest.raises(TagPermissionDenied, match="Bestellt"):
        tags_change_pairs(add={ordered: [contact.pk]}, actor=staff_user)
    assert TagAssignment.objects.count() == 0
    # Different contacts may take different tags of one single-choice dimension.
    result = tags_change_pairs(add={cart: [contact.pk], ordered: [other.pk]})
    assert result.added == 2


def test_undo_in_slices_restores_exactly_what_one_statement_would(make_contact, make_tag,
                                                                 monkeypatch):
    import tagging.services

    monkeypatch.setattr(tagging.services, "UNDO_SLICE", 2)  # SQLite's slices, tiny
    contacts = make_contact.create_batch(5)
    new, old = make_tag(), make_tag()
    tags_change(contacts=contacts[:3], add=[old])
    tags_change(contacts=contacts[4:], add=[new])

    change = tags_change(contacts=contacts, add=[new], remove=[old])
    undo = operation_undo(operation=change.operation)

    assert (undo.added, undo.removed, undo.contacts) == (3, 4, 4)
    assert holders(old) == {c.pk for c in contacts[:3]}
    assert holders(new) == {contacts[4].pk}
    assert operation_undo(operation=change.operation).changed is False
    # Resumed after a cut-short run, the slices already done change nothing more.
    again = operation_undo(operation=change.operation, resume=True)
    assert (again.added, again.removed) == (0, 0)
