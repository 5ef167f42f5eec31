"""Audiences: live count endpoint, tag filters, Manage tags (sync, async, refusal, undo),
saved segments and the two commands."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection
from django.urls import reverse

from tagging.audiences.models import BulkOperation, BulkStatus, Segment
from tagging.audiences.services import bulk_operation_start, bulk_operation_undo
from tagging.models import AssignmentHistory, TagAssignment
from tagging.services import tags_change

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:crm_contact_changelist"


@pytest.fixture
def base(make_contact, make_dimension, make_tag):
    """PRODUCT.md §5: interacted recently, some ordered, some inactive."""
    from datetime import timedelta

    from django.utils import timezone

    activity = make_dimension(name="Aktivität")
    stage = make_dimension(name="Kaufphase", single_choice=True)
    tags = {
        "inactive": make_tag(name="Inaktiver Kunde", dimension=activity),
        "potential": make_tag(name="Hohes Potenzial - Nachverfolgung erforderlich",
                              dimension=activity),
        "ordered": make_tag(name="Bestellt", dimension=stage),
        "browsing": make_tag(name="Kaufphase-Stöbern", dimension=stage),
    }
    recent = timezone.now() - timedelta(days=3)
    contacts = make_contact.create_batch(6, last_interaction_at=recent)
    old = make_contact.create_batch(2)
    tags_change(contacts=contacts[:4], add=[tags["inactive"]])
    tags_change(contacts=contacts[4:], add=[tags["ordered"]])
    tags_change(contacts=contacts[:2], add=[tags["browsing"]])
    return {"tags": tags, "recent": contacts, "old": old}


EXPR = 'last_interaction within 30d AND NOT "Bestellt"'


def holders(tag) -> set[int]:
    return set(TagAssignment.objects.filter(tag=tag).values_list("contact_id", flat=True))


# --- live count and filters -----------------------------------------------------------


def test_count_endpoint_returns_count_or_error_with_position(client, superuser, base):
    client.force_login(superuser)
    url = reverse("admin:crm_contact_audience_count")
    assert client.get(url, {"expr": EXPR}).json() == {"count": 4}
    response = client.get(url, {"expr": 'last_interaction within 30d AND NOT "Bestelt"'})
    assert response.status_code == 400
    assert response.json()["position"] == 37
    assert "did you mean “Bestellt”" in response.json()["error"]


def test_count_endpoint_needs_a_staff_login(client, base):
    response = client.get(reverse("admin:crm_contact_audience_count"), {"expr": EXPR})
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_changelist_filters_by_expression_and_survives_a_bad_one(client, superuser, base):
    client.force_login(superuser)
    response = client.get(reverse(CHANGELIST), {"expr": EXPR})
    shown = {c.pk for c in response.context["cl"].result_list}
    assert shown == {c.pk for c in base["recent"][:4]}
    assert response.context["cl"].result_count == 4
    assert 'value="last_interaction within 30d AND NOT &quot;Bestellt&quot;"' in \
        response.content.decode()
    bad = client.get(reverse(CHANGELIST), {"expr": '"Bestellt" AND'})
    assert bad.status_code == 200
    assert "ends too early" in bad.content.decode()
    assert list(bad.context["cl"].result_list) == []


def test_has_and_has_not_tag_filters_combine_without_duplicates(client, superuser, base):
    client.force_login(superuser)
    stage = base["tags"]["ordered"].dimension
    activity = base["tags"]["inactive"].dimension
    response = client.get(reverse(CHANGELIST), {
        f"tag_d{activity.pk}": str(base["tags"]["inactive"].pk),
        f"tag_d{stage.pk}": f"-{base['tags']['browsing'].pk}",
    })
    result = list(response.context["cl"].result_list)
    assert sorted(c.pk for c in result) == sorted(c.pk for c in base["recent"][2:4])
    sql = str(response.context["cl"].queryset.query).upper()
    assert "DISTINCT" not in sql and " JOIN " not in sql


# --- Manage tags ----------------------------------------------------------------------


def _post_action(client, data, expr=EXPR):
    url = reverse(CHANGELIST) + "?" + f"expr={expr}"
    return client.post(url, data, follow=True)


def test_manage_tags_on_all_matches_previews_then_applies(client, superuser, base):
    client.force_login(superuser)
    tags, recent = base["tags"], base["recent"]
    common = {"action": "manage_tags", "select_across": "1",
              "_selected_action": [recent[0].pk]}  # one visible row, but “all matching”
    form = _post_action(client, common)
    assert 'id="tw-picker"' in form.content.decode()
    preview = _post_action(client, {**common, "tw_step": "preview",
                                    "add": [tags["potential"].pk],
                                    "remove": [tags["inactive"].pk]})
    effects = {e.tag.name: (e.gain, e.lose) for e in preview.context["preview"].effects}
    assert preview.context["preview"].total == 4
    assert effects == {tags["potential"].name: (4, 0), tags["inactive"].name: (0, 4)}
    assert holders(tags["potential"]) == set()  # nothing changed yet

    done = _post_action(client, {**common, "tw_step": "apply", "add": [tags["potential"].pk],
                                 "remove": [tags["inactive"].pk]})
    assert "Tags changed on 4 contacts: 4 added, 4 removed." in done.content.decode()
    assert holders(tags["potential"]) == {c.pk for c in recent[:4]}
    assert holders(tags["inactive"]) == set()
    bulk = BulkOperation.objects.get()
    assert (bulk.actor, bulk.status, bulk.total, bulk.added, bulk.removed) == (
        superuser, BulkStatus.DONE, 4, 4, 4)
    assert "Bestellt" in bulk.expression
    assert AssignmentHistory.objects.filter(operation=bulk.operation).count() == 8


def test_manage_tags_on_selected_rows_only(client, superuser, base):
    client.force_login(superuser)
    tags, recent = base["tags"], base["recent"]
    _post_action(client, {"action": "manage_tags", "select_across": "0",
                          "_selected_action": [recent[0].pk, recent[1].pk], "tw_step": "apply",
                          "add": [tags["potential"].pk]})
    assert holders(tags["potential"]) == {recent[0].pk, recent[1].pk}


def test_refused_bulk_change_changes_nothing(client, base, django_user_model):
    tags, recent = base["tags"], base["recent"]
    agent = django_user_model.objects.create_user("agent", password="x", is_staff=True)
    agent.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_contact", "change_contact", "add_bulkoperation"]))
    from guardian.shortcuts import assign_perm

    assign_perm("tagging.apply_dimension_tags", agent, tags["inactive"].dimension)
    before = set(TagAssignment.objects.values_list("contact_id", "tag_id"))
    client.force_login(agent)
    response = _post_action(client, {
        "action": "manage_tags", "select_across": "1", "_selected_action": [recent[0].pk],
        "tw_step": "apply", "add": [tags["ordered"].pk], "remove": [tags["inactive"].pk]})
    assert "You may not apply or remove these tags: Bestellt" in response.content.decode()
    assert set(TagAssignment.objects.values_list("contact_id", "tag_id")) == before
    assert not BulkOperation.objects.exists()


def test_undo_restores_exactly_and_a_second_undo_does_nothing(superuser, base):
    tags, recent = base["tags"], base["recent"]
    before = set(TagAssignment.objects.values_list("contact_id", "tag_id"))
    bulk = bulk_operation_start(contacts=[c.pk for c in recent], add=[tags["browsing"]],
                                remove=[tags["inactive"]], actor=superuser)
    assert bulk.replaced == 2  # the two ordered contacts lost “Bestellt” (single choice)
    assert set(TagAssignment.objects.values_list("contact_id", "tag_id")) != before
    assert bulk_operation_undo(bulk=bulk, actor=superuser) is not None
    assert set(TagAssignment.objects.values_list("contact_id", "tag_id")) == before
    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.UNDONE and bulk.undone_by == superuser
    history = AssignmentHistory.objects.count()
    assert bulk_operation_undo(bulk=bulk, actor=superuser) is None
    assert AssignmentHistory.objects.count() == history


def test_large_change_runs_on_a_worker_with_progress(client, superuser, base, settings,
                                                     monkeypatch,
                                                     django_capture_on_commit_callbacks):
    import tagging.services

    settings.TAGWERK_BULK_ASYNC_THRESHOLD = 3
    monkeypatch.setattr(tagging.audiences.services, "SLICE_SIZE", 2)
    seen: list[int] = []
    original = BulkOperation.objects.filter

    def spy(*args, **kwargs):
        # Record the progress the worker reports as it goes, batch by batch.
        qs = original(*args, **kwargs)
        update = qs.update

        def recording_update(**fields):
            if "processed" in fields:
                seen.append(fields["processed"])
            return update(**fields)

        qs.update = recording_update
        return qs

    monkeypatch.setattr(BulkOperation.objects, "filter", spy)
    tags, recent = base["tags"], base["recent"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        bulk = bulk_operation_start(contacts=[c.pk for c in recent[:5]],
                                    add=[tags["potential"]], actor=superuser)
    assert bulk.status == BulkStatus.PENDING and holders(tags["potential"]) == set()
    client.force_login(superuser)
    progress_url = reverse("admin:audiences_bulkoperation_progress", args=[bulk.pk])
    assert client.get(progress_url).json()["percent"] == 0
    for callback in callbacks:
        callback()  # the worker (eager in tests) picks the task up
    assert seen[:3] == [2, 4, 5]
    state = client.get(progress_url).json()
    assert state == {**state, "status": "done", "percent": 100, "added": 5, "finished": True}
    page = client.get(reverse("admin:audiences_bulkoperation_change", args=[bulk.pk]))
    assert "Done: 5 added, 0 removed." in page.content.decode()
    client.post(reverse("admin:audiences_bulkoperation_undo", args=[bulk.pk]))
    assert holders(tags["potential"]) == set()


def test_admin_redirects_a_large_change_to_its_progress_page(client, superuser, base, settings):
    settings.TAGWERK_BULK_ASYNC_THRESHOLD = 2
    client.force_login(superuser)
    response = _post_action(client, {
        "action": "manage_tags", "select_across": "1", "_selected_action": [base["recent"][0].pk],
        "tw_step": "apply", "add": [base["tags"]["potential"].pk]})
    bulk = BulkOperation.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:audiences_bulkoperation_change",
                                                     args=[bulk.pk])
    assert 'id="tw-bulk-bar"' in response.content.decode()


# --- saved segments -------------------------------------------------------------------


def test_segment_list_shows_count_and_opens_its_contacts(client, superuser, base):
    client.force_login(superuser)
    response = client.post(reverse("admin:audiences_segment_add"), {
        "name": "Nachfassen", "expression": EXPR, "description": ""})
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert (segment.count, segment.owner) == (4, superuser)
    body = client.get(reverse("admin:audiences_segment_changelist")).content.decode()
    assert ">4<" in body and "open contacts in this segment" in body
    tags_change(contacts=base["old"], add=[base["tags"]["potential"]])
    Segment.objects.filter(pk=segment.pk).update(expression='"Hohes Potenzial - '
                                                 'Nachverfolgung erforderlich"')
    client.post(reverse("admin:audiences_segment_changelist"),
                {"action": "refresh_counts", "_selected_action": [segment.pk]})
    segment.refresh_from_db()
    assert segment.count == 2


def test_segment_with_a_bad_expression_is_refused_with_the_position(client, superuser, base):
    client.force_login(superuser)
    response = client.post(reverse("admin:audiences_segment_add"), {
        "name": "Kaputt", "expression": '"Bestelt"', "description": ""})
    assert response.status_code == 200
    assert "did you mean “Bestellt”" in response.content.decode()
    assert not Segment.objects.exists()


def test_beat_task_refreshes_segment_counts(base):
    from tagging.audiences.tasks import segment_counts_refresh_task

    segment = Segment.objects.create(name="S", expression='"Inaktiver Kunde"')
    assert segment_counts_refresh_task.delay().get() == 1
    segment.refresh_from_db()
    assert segment.count == 4 and segment.counted_at is not None


# --- commands -------------------------------------------------------------------------


def test_audience_command_count_and_csv(base, tmp_path):
    out = StringIO()
    call_command("audience", EXPR, "--count", stdout=out)
    assert out.getvalue().strip() == "4"
    path = tmp_path / "a.csv"
    call_command("audience", EXPR, "--csv", str(path), stdout=StringIO())
    lines = path.read_text().splitlines()
    assert lines[0].startswith("id,phone") and len(lines) == 5
    with pytest.raises(CommandError, match="did you mean “purchases”"):
        call_command("audience", "purchase > 3", "--count")


def test_tag_contacts_command_dry_run_then_apply(base):
    tags = base["tags"]
    args = ["--where", EXPR, "--add", tags["potential"].name, "--remove", "Inaktiver Kunde",
            "--json"]
    out = StringIO()
    call_command("tag_contacts", *args, "--dry-run", stdout=out)
    dry = json.loads(out.getvalue())
    assert dry["total"] == 4 and [t["gain"] for t in dry["tags"]] == [4, 0]
    assert holders(tags["potential"]) == set()
    out = StringIO()
    call_command("tag_contacts", *args, stdout=out)
    result = json.loads(out.getvalue())
    assert (result["added"], result["removed"], result["status"]) == (4, 4, "done")
    assert len(holders(tags["potential"])) == 4
    with pytest.raises(CommandError, match="Unknown tag"):
        call_command("tag_contacts", "--where", EXPR, "--add", "Gibtsnicht")


def test_manage_tags_is_offered_only_to_users_who_may_apply_tags(client, base,
                                                                django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(viewer)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert 'value="manage_tags"' not in response.content.decode()
    from guardian.shortcuts import assign_perm

    # An agent's grant on one dimension is for the contact page, not for bulk changes.
    assign_perm("tagging.apply_dimension_tags", viewer, base["tags"]["inactive"].dimension)
    assert 'value="manage_tags"' not in client.get(reverse(CHANGELIST)).content.decode()
    viewer.user_permissions.add(Permission.objects.get(codename="apply_dimension_tags"))
    assert 'value="manage_tags"' in client.get(reverse(CHANGELIST)).content.decode()


def test_a_marketer_follows_and_undoes_the_operation_they_started(client, base,
                                                                  django_user_model):
    marketer = django_user_model.objects.create_user("marketer", password="x", is_staff=True)
    marketer.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_contact", "apply_dimension_tags"]))
    bulk = bulk_operation_start(contacts=[c.pk for c in base["recent"]],
                                add=[base["tags"]["potential"]], actor=marketer)
    client.force_login(marketer)
    progress = client.get(reverse("admin:audiences_bulkoperation_progress", args=[bulk.pk]))
    assert progress.json()["status"] == "done"
    assert client.get(reverse("admin:audiences_bulkoperation_change",
                              args=[bulk.pk])).status_code == 200
    client.post(reverse("admin:audiences_bulkoperation_undo", args=[bulk.pk]))
    assert holders(base["tags"]["potential"]) == set()
    other = bulk_operation_start(contacts=[base["recent"][0].pk],
                                 add=[base["tags"]["potential"]])
    forbidden = client.get(reverse("admin:audiences_bulkoperation_progress", args=[other.pk]))
    assert forbidden.status_code == 403


def test_audience_csv_escapes_formula_cells(base, tmp_path, make_contact):
    make_contact(first_name="@SUM(1+1)", last_name="=1+1", purchase_count=99)
    path = tmp_path / "a.csv"
    call_command("audience", "purchases >= 99", "--csv", str(path), stdout=StringIO())
    import csv
    rows = list(csv.reader(path.open()))
    assert rows[1][2:4] == ["'@SUM(1+1)", "'=1+1"]
    assert rows[1][1].startswith("+") and not rows[1][1].startswith("'")


def test_a_failed_undo_gives_its_claim_back_and_the_next_click_finishes_it(
        base, superuser, monkeypatch):
    import tagging.services

    tags, recent = base["tags"], base["recent"]
    before = set(TagAssignment.objects.values_list("contact_id", "tag_id"))
    bulk = bulk_operation_start(contacts=[c.pk for c in recent], add=[tags["browsing"]],
                                remove=[tags["inactive"]], actor=superuser)
    monkeypatch.setattr(tagging.services, "UNDO_SLICE", 1)  # SQLite: a slice per change
    # SQLite fails after its first slice committed; PostgreSQL's one transaction at once.
    fail_at = 2 if connection.vendor == "sqlite" else 1
    calls = []
    for writer in (tagging.services._PortableWriter, tagging.services._PostgresWriter):
        def failing_second(self, *args, _original=writer.remove_where, **kwargs):
            calls.append(1)
            if len(calls) == fail_at:
                raise DatabaseError("database is locked")
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(writer, "remove_where", failing_second)

    with pytest.raises(DatabaseError):
        bulk_operation_undo(bulk=bulk, actor=superuser)
    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.DONE and bulk.undone_at is None

    assert bulk_operation_undo(bulk=bulk, actor=superuser) is not None
    assert set(TagAssignment.objects.values_list("contact_id", "tag_id")) == before
    bulk.refresh_from_db()
    assert bulk.status == BulkStatus.UNDONE
