from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tagging.models import AssignmentHistory, TagAssignment
from tagging.permissions import TagPermissionDenied
from tagging.services import assignment_expiry_set, tags_change
from tagging.tasks import expired_assignments_remove_task

pytestmark = pytest.mark.django_db


def test_beat_runs_the_expiry_hourly():
    task = PeriodicTask.objects.get(task="tagging.tasks.expired_assignments_remove_task")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (1, "hours")


def test_lifetime_and_explicit_expiry_are_removed_by_the_task(make_tag, make_contact,
                                                             staff_user):
    short = make_tag(name="Interesse Produkt A", lifetime_days=90)
    lasting = make_tag(name="VIP")
    old, fresh = make_contact(), make_contact()
    tags_change(contacts=[old, fresh], add=[short, lasting])
    # One assignment reaches its lifetime, another gets an explicit expiry.
    TagAssignment.objects.filter(contact=old, tag=short).update(
        expires_at=timezone.now() - timedelta(minutes=1))
    assert assignment_expiry_set(contacts=[fresh], tag=lasting,
                                 expires_at=timezone.now() - timedelta(seconds=1)) == 1
    with pytest.raises(TagPermissionDenied):
        assignment_expiry_set(contacts=[fresh], tag=lasting, expires_at=None, actor=staff_user)

    removed = expired_assignments_remove_task.delay().get()

    assert removed == 2
    assert set(TagAssignment.objects.values_list("contact_id", "tag_id")) == {
        (old.pk, lasting.pk), (fresh.pk, short.pk)}
    assert AssignmentHistory.objects.filter(reason="expiry", action="removed").count() == 2
    assert expired_assignments_remove_task.delay().get() == 0  # a repeat finds nothing


def test_lifetime_gives_new_assignments_an_expiry(make_tag, make_contact):
    tag = make_tag(lifetime_days=30)
    tags_change(contacts=[make_contact()], add=[tag])
    expires = TagAssignment.objects.get(tag=tag).expires_at
    assert timedelta(days=29) < expires - timezone.now() <= timedelta(days=30)
