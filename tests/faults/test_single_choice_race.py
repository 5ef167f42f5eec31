"""Eight ``tag_contacts`` runs in separate processes, each adding a different tag of one
single-choice dimension to the same 200 contacts: every contact ends with one tag of it.

What was seen on main (#14): all 200 contacts held two tags of the dimension, because each
run's "remove the rivals" missed the other runs' uncommitted tags. Run one after the other
they replaced correctly; ``tagging.services.single_choice_lock`` makes them take turns.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections

from tagging.models import AssignmentHistory, HistoryAction, TagAssignment
from tests.conftest import needs_postgresql
from tests.factories import ContactFactory, DimensionFactory, TagFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

WRITERS = 8
CONTACTS = 200


def _run(tag_name: str, barrier, errors) -> None:
    """One writer process: the command a marketer runs, started at the same moment."""
    connections.close_all()  # the parent's connection is not this process's to use
    try:
        barrier.wait(timeout=60)
        call_command("tag_contacts", "--where", "purchases >= 0", "--add", tag_name,
                     stdout=StringIO(), stderr=StringIO())
    except BaseException as error:  # reported to the parent, which fails
        errors.put(f"{tag_name}: {error!r}")
    finally:
        connections.close_all()


def test_eight_concurrent_writers_leave_one_tag_of_a_single_choice_dimension():
    needs_postgresql("the race needs PostgreSQL's concurrent writers in separate processes")
    stage = DimensionFactory(name="Kaufphase", single_choice=True)
    tags = [TagFactory(name=f"Phase {i}", dimension=stage) for i in range(WRITERS)]
    contacts = [ContactFactory(purchase_count=1) for _ in range(CONTACTS)]
    connections.close_all()

    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(WRITERS), context.Queue()
    procs = [context.Process(target=_run, args=(tag.name, barrier, errors)) for tag in tags]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=180)
    assert all(proc.exitcode == 0 for proc in procs), [p.exitcode for p in procs]
    assert errors.empty(), errors.get()

    held = Counter(TagAssignment.objects.filter(tag__dimension=stage)
                   .values_list("contact_id", flat=True))
    assert set(held) == {c.pk for c in contacts}
    assert max(held.values()) == 1
    # Every run did its work: each added its tag to all 200, and all but the last one's
    # tags were replaced, each replacement in the history.
    added = AssignmentHistory.objects.filter(action=HistoryAction.ADDED, tag__in=tags).count()
    replaced = AssignmentHistory.objects.filter(action=HistoryAction.REMOVED, replaced=True,
                                                tag__in=tags).count()
    assert added == WRITERS * CONTACTS and replaced == (WRITERS - 1) * CONTACTS
