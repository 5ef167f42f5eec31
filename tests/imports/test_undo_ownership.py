"""Who may undo (#14): the person who ran an import or bulk operation, a tag administrator
or a superuser — not another marketer (seen on main: a Marketer undid another user's
import, deleting the contacts it had created)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from guardian.shortcuts import remove_perm

from crm.models import Contact
from tagging.audiences.models import BulkStatus
from tagging.audiences.services import bulk_operation_start, bulk_operation_undo
from tagging.imports.models import ImportStatus
from tagging.imports.services import import_undo
from tagging.roles import MARKETERS, TAG_ADMINISTRATORS, roles_sync
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

CSV = "phone,tags\n+4915123000001,VIP\n+4915123000002,VIP\n"
IMPORT_REFUSAL = "Only the person who ran this import, or a tag administrator, may undo it."
BULK_REFUSAL = ("Only the person who started this bulk operation, or a tag administrator, "
                "may undo it.")


@pytest.fixture
def people(vocabulary):
    roles_sync()

    def member(role: str):
        user = UserFactory(is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        return user

    return {"anna": member(MARKETERS), "ben": member(MARKETERS),
            "admin": member(TAG_ADMINISTRATORS)}


def test_another_marketer_may_not_undo_an_import(vocabulary, run_import, people):
    job = run_import(CSV, actor=people["anna"])
    with pytest.raises(PermissionDenied, match="Only the person who ran this import"):
        import_undo(job=job, actor=people["ben"])
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and Contact.objects.count() == 2


@pytest.mark.parametrize("who", ["anna", "admin", "system"])
def test_the_importer_a_tag_administrator_or_the_system_may_undo(vocabulary, run_import,
                                                                 people, who):
    job = run_import(CSV, actor=people["anna"])
    import_undo(job=job, actor=None if who == "system" else people[who])
    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE and Contact.objects.count() == 0


def test_the_import_page_tells_another_marketer_why_there_is_no_undo(client, vocabulary,
                                                                      run_import, people):
    job = run_import(CSV, actor=people["anna"])
    client.force_login(people["ben"])
    page = client.get(reverse("admin:imports_importjob_job", args=[job.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert IMPORT_REFUSAL in text and 'id="tw-undo"' not in text
    answer = client.post(reverse("admin:imports_importjob_undo", args=[job.pk]), follow=True)
    assert IMPORT_REFUSAL in answer.content.decode()
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and Contact.objects.count() == 2

    client.force_login(people["anna"])
    own = client.get(reverse("admin:imports_importjob_job", args=[job.pk])).content.decode()
    assert 'id="tw-undo"' in own and IMPORT_REFUSAL not in own


def test_another_marketer_may_not_undo_a_bulk_operation(client, vocabulary, people):
    contacts = [ContactFactory() for _ in range(3)]
    bulk = bulk_operation_start(contacts=[c.pk for c in contacts], add=[vocabulary["VIP"]],
                                actor=people["anna"])
    with pytest.raises(PermissionDenied, match="Only the person who started"):
        bulk_operation_undo(bulk=bulk, actor=people["ben"])

    client.force_login(people["ben"])
    page = client.get(reverse("admin:audiences_bulkoperation_change", args=[bulk.pk]))
    # Marketers see every bulk operation; another's shows why it has no undo button.
    assert page.status_code == 200
    assert BULK_REFUSAL in page.content.decode()
    assert 'id="tw-undo"' not in page.content.decode()
    answer = client.post(reverse("admin:audiences_bulkoperation_changelist"),
                         {"action": "undo", "_selected_action": [bulk.pk]}, follow=True)
    assert BULK_REFUSAL in answer.content.decode()
    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.DONE

    assert bulk_operation_undo(bulk=bulk, actor=people["admin"]) is not None
    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.UNDONE


# --- A withdrawn grant withdraws the undo (the owner changes tags only where still granted) --

GRANTED_CSV = "phone,tags\n+4915123000001,VIP;Bestellt\n+4915123000002,VIP\n"
LOST = ("You may no longer apply tags in these dimensions, which this undo would change: "
        "Kaufphase. Nothing was undone; ask a tag administrator to undo it.")


def _withdraw(user, dimension):
    remove_perm("tagging.apply_dimension_tags", user, dimension)
    return type(user).objects.get(pk=user.pk)  # a fresh user: no cached permissions


def test_an_import_owner_whose_grant_was_withdrawn_may_not_undo_it(vocabulary, run_import,
                                                                  marketer, people):
    job = run_import(GRANTED_CSV, actor=marketer)
    assert job.tags_added == 3
    marketer = _withdraw(marketer, vocabulary["dimensions"]["Kaufphase"])

    with pytest.raises(PermissionDenied) as refused:
        import_undo(job=job, actor=marketer)
    assert str(refused.value) == LOST
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and Contact.objects.count() == 2
    assert vocabulary["Bestellt"].assignments.count() == 1

    import_undo(job=job, actor=people["admin"])  # a tag administrator still may
    job.refresh_from_db()
    assert job.status == ImportStatus.UNDONE and Contact.objects.count() == 0


def test_the_import_page_tells_the_owner_which_dimension_they_lost(client, vocabulary,
                                                                   run_import, marketer):
    for codename in ("add_importjob", "view_importjob"):
        marketer.user_permissions.add(Permission.objects.get(codename=codename))
    job = run_import(GRANTED_CSV, actor=marketer)
    marketer = _withdraw(marketer, vocabulary["dimensions"]["Kaufphase"])
    client.force_login(marketer)
    page = client.get(reverse("admin:imports_importjob_job", args=[job.pk])).content.decode()
    assert LOST in page and 'id="tw-undo"' not in page
    answer = client.post(reverse("admin:imports_importjob_undo", args=[job.pk]), follow=True)
    assert LOST in answer.content.decode()
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE


def test_a_bulk_owner_whose_grant_was_withdrawn_may_not_undo_it(client, vocabulary, marketer):
    contacts = [ContactFactory() for _ in range(3)]
    bulk = bulk_operation_start(contacts=[c.pk for c in contacts],
                                add=[vocabulary["VIP"], vocabulary["Bestellt"]], actor=marketer)
    marketer = _withdraw(marketer, vocabulary["dimensions"]["Kaufphase"])
    with pytest.raises(PermissionDenied) as refused:
        bulk_operation_undo(bulk=bulk, actor=marketer)
    assert str(refused.value) == LOST

    marketer.is_staff = True
    marketer.save()
    marketer.user_permissions.add(Permission.objects.get(codename="view_bulkoperation"))
    client.force_login(marketer)
    page = client.get(reverse("admin:audiences_bulkoperation_change", args=[bulk.pk]))
    assert LOST in page.content.decode() and 'id="tw-undo"' not in page.content.decode()
    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.DONE and vocabulary["VIP"].assignments.count() == 3

    assert bulk_operation_undo(bulk=bulk, actor=None) is not None  # the system still may
    assert vocabulary["VIP"].assignments.count() == 0


def test_the_undo_right_is_checked_once_per_dimension_not_once_per_tag(
        vocabulary, marketer, django_assert_max_num_queries):
    """An import of a product catalogue touches hundreds of tags of one dimension: its page
    and its undo check the owner's grant per dimension, a handful of queries."""
    from tagging.permissions import undo_refusal_for
    from tests.factories import TagFactory

    interest = vocabulary["dimensions"]["Interesse"]
    tags = [TagFactory(name=f"Produkt-{i:03}", dimension=interest) for i in range(40)]
    with django_assert_max_num_queries(6):
        assert undo_refusal_for(marketer, marketer.pk, "not yours", tags) == ""
