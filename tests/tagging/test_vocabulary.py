import pytest
from django.test import override_settings

from tagging.models import AssignmentHistory, Dimension, Tag, TagAssignment, TagVersion
from tagging.permissions import TagPermissionDenied
from tagging.services import TagChangeError, tags_change
from tagging.vocabulary import (
    NearTwinWarning,
    VocabularyError,
    dimension_archive,
    dimension_delete,
    dimension_references,
    dimension_restore,
    dimension_save,
    edit_distance,
    register_tag_reference,
    tag_archive,
    tag_create,
    tag_delete,
    tag_merge,
    tag_references,
    tag_restore,
    tag_save,
)
from tests.tagging.governance import user_in_role

pytestmark = pytest.mark.django_db


def log(obj=None):
    rows = TagVersion.objects.order_by("id")
    if obj is not None:
        rows = rows.filter(object_id=obj.pk)
    return list(rows.values_list("action", flat=True))


@pytest.mark.parametrize("twin", ["bestellt", " BESTELLT ", "Be-stellt", "béstellt"])
def test_normalised_names_are_one_name(make_tag, make_dimension, twin):
    make_tag(name="Bestellt")
    with pytest.raises(VocabularyError, match="“Bestellt” already exists"):
        tag_create(dimension=make_dimension(), name=twin)
    assert Tag.objects.count() == 1


def test_near_twin_is_refused_until_confirmed_with_a_reason(make_tag, make_dimension):
    make_tag(name="Bestellt")
    dimension = make_dimension()
    with pytest.raises(NearTwinWarning, match="“Bestellt”") as warning:
        tag_create(dimension=dimension, name="Bestelt")
    assert [t.name for t in warning.value.twins] == ["Bestellt"]
    with pytest.raises(NearTwinWarning):
        tag_create(dimension=dimension, name="Bestelt", near_twins_confirmed=True)

    tag = tag_create(dimension=dimension, name="Bestelt", near_twins_confirmed=True,
                     reason="the supplier's word")

    entry = TagVersion.objects.get(object_id=tag.pk)
    assert (entry.action, entry.reason) == ("created", "the supplier's word")
    assert entry.changes["near_twins_confirmed"] is True


@override_settings(TAGWERK_TAG_SYNONYMS=[["Bestellt", "Ordered"], ["Bezahlt", "Paid"]])
def test_configured_synonyms_are_near_twins(make_tag, make_dimension):
    make_tag(name="Bestellt")
    with pytest.raises(NearTwinWarning, match="Bestellt"):
        tag_create(dimension=make_dimension(), name="ordered")
    assert tag_create(dimension=make_dimension(), name="Paid").pk  # no "Bezahlt" yet


def test_edit_distance():
    assert edit_distance("bestellt", "bestelt", 2) == 1
    assert edit_distance("vip", "svip", 2) == 1
    assert edit_distance("interessesport", "interessereisen", 2) == 3


def test_rename_needs_a_reason_and_every_kind_of_change_is_logged(make_tag, make_dimension,
                                                                   superuser):
    tag = tag_create(dimension=make_dimension(name="Interesse"), name="Sport", actor=superuser)
    tag.name = "Interesse-Sport"
    with pytest.raises(VocabularyError, match="reason") as refused:
        tag_save(tag=tag, actor=superuser)
    assert refused.value.field == "reason"
    assert Tag.objects.get(pk=tag.pk).name == "Sport"

    tag.colour, tag.dimension = "#FF0000", make_dimension(name="Hobby")
    tag_save(tag=tag, actor=superuser, reason="one name per meaning")
    tag.symbol = "⚽"
    tag_save(tag=tag, actor=superuser)
    tag_save(tag=tag, actor=superuser)  # unchanged: no entry

    assert log(tag) == ["created", "renamed", "moved", "recoloured", "changed"]
    renamed = TagVersion.objects.get(object_id=tag.pk, action="renamed")
    assert renamed.changes["name"] == ["Sport", "Interesse-Sport"]
    assert (renamed.actor, renamed.reason) == (superuser, "one name per meaning")
    assert TagVersion.objects.get(object_id=tag.pk, action="moved").changes["dimension"] == [
        "Interesse", "Hobby"]


def test_moving_into_a_single_choice_dimension_must_not_break_it(make_tag, make_dimension,
                                                                  make_contact):
    stage = make_dimension(single_choice=True)
    ordered, paid = make_tag(dimension=stage, name="Bestellt"), make_tag(name="Bezahlt")
    tags_change(contacts=[make_contact()], add=[ordered, paid])
    paid.dimension = stage
    with pytest.raises(VocabularyError, match="1 contacts hold"):
        tag_save(tag=paid, reason="x")


def test_marketer_cannot_change_the_vocabulary(make_tag):
    marketer = user_in_role("marketer")
    tag = make_tag(name="VIP")
    with pytest.raises(TagPermissionDenied, match="define"):
        tag_archive(tag=tag, actor=marketer, reason="x")
    tag.name = "VIP-Kunde"
    with pytest.raises(TagPermissionDenied):
        tag_save(tag=tag, actor=marketer, reason="x")
    assert Tag.objects.get(pk=tag.pk).name == "VIP" and log() == []


def test_archive_and_restore_are_logged_once(make_tag, make_contact, superuser):
    tag = make_tag()
    with pytest.raises(VocabularyError, match="reason"):
        tag_archive(tag=tag, actor=superuser, reason=" ")
    assert tag_archive(tag=tag, actor=superuser, reason="season over") is True
    assert tag_archive(tag=tag, actor=superuser, reason="again") is False
    with pytest.raises(TagChangeError, match="Archived"):
        tags_change(contacts=[make_contact()], add=[tag])
    assert tag_restore(tag=tag, actor=superuser, reason="back") is True
    assert log(tag) == ["archived", "restored"]
    assert Tag.objects.get(pk=tag.pk).is_archived is False


def test_merge_moves_holders_without_duplicates_and_archives_the_source(
        make_tag, make_contact, superuser):
    ordered, bestellt = make_tag(name="Ordered"), make_tag(name="Bestellt")
    both, only_ordered, only_bestellt = make_contact(), make_contact(), make_contact()
    tags_change(contacts=[both, only_ordered], add=[ordered])
    tags_change(contacts=[both, only_bestellt], add=[bestellt])

    result = tag_merge(source=ordered, target=bestellt, actor=superuser, reason="one name")

    assert (result.contacts, result.moved) == (2, 1)
    assert set(TagAssignment.objects.filter(tag=bestellt).values_list("contact_id", flat=True)) \
        == {both.pk, only_ordered.pk, only_bestellt.pk}
    assert not TagAssignment.objects.filter(tag=ordered).exists()
    ordered.refresh_from_db()
    assert ordered.is_archived
    assert log(ordered) == ["merged", "archived"]
    merged = TagVersion.objects.get(object_id=ordered.pk, action="merged")
    assert merged.changes["into"] == "Bestellt" and merged.reason == "one name"
    history = AssignmentHistory.objects.filter(reason="merge")
    assert sorted(history.values_list("action", flat=True)) == ["added", "removed", "removed"]
    assert set(history.values_list("actor_id", flat=True)) == {superuser.pk}
    # A repeat finds nothing left to move.
    assert tag_merge(source=ordered, target=bestellt, actor=superuser, reason="x").moved == 0


def test_merge_into_a_single_choice_dimension_replaces(make_tag, make_dimension, make_contact):
    stage = make_dimension(single_choice=True)
    cart, ordered = make_tag(dimension=stage, name="Warenkorb"), make_tag(dimension=stage,
                                                                          name="Bestellt")
    old = make_tag(name="Bestellung")
    contact = make_contact()
    tags_change(contacts=[contact], add=[cart, old])
    result = tag_merge(source=old, target=ordered, reason="duplicate")
    assert result.replaced == 1
    assert set(contact.tags.values_list("name", flat=True)) == {"Bestellt"}


def test_references_are_counts_and_other_apps_can_add_theirs(make_tag, make_contact,
                                                             monkeypatch):
    monkeypatch.setattr("tagging.vocabulary._REFERENCE_COUNTERS", [])
    tag = make_tag()
    tags_change(contacts=make_contact.create_batch(3), add=[tag])
    register_tag_reference("segments", lambda t: 2 if t.pk == tag.pk else 0)
    refs = {r.label: r.count for r in tag_references(tag)}
    assert refs == {"contacts holding it": 3, "segments": 2}
    assert tag_references(make_tag()) == []


def test_delete_removes_assignments_with_history_and_logs_the_reason(make_tag, make_contact,
                                                                      superuser):
    tag = make_tag(name="Alt")
    tags_change(contacts=make_contact.create_batch(2), add=[tag])
    with pytest.raises(VocabularyError):
        tag_delete(tag=tag, actor=superuser, reason="")
    removed = tag_delete(tag=tag, actor=superuser, reason="typo")
    assert removed == 2
    assert not Tag.objects.filter(name="Alt").exists()
    assert AssignmentHistory.objects.filter(action="removed", tag_id=tag.pk).count() == 2
    entry = TagVersion.objects.get(action="deleted")
    assert (entry.object_name, entry.reason, entry.changes["contacts_untagged"]) == (
        "Alt", "typo", 2)


def test_dimension_rules_and_log(make_dimension, make_tag, superuser):
    from tagging.models import Dimension

    dimension = dimension_save(dimension=Dimension(name="Kaufkraft"), actor=superuser)
    with pytest.raises(VocabularyError, match="already exists"):
        dimension_save(dimension=Dimension(name="KAUFKRAFT"))
    dimension.name = "Kaufkraft-Stufe"
    with pytest.raises(VocabularyError, match="Give a reason"):
        dimension_save(dimension=dimension, actor=superuser)
    dimension_save(dimension=dimension, actor=superuser, reason="clearer")
    dimension.colour = "#2F9E44"
    dimension_save(dimension=dimension, actor=superuser)  # a recolour needs no reason
    with pytest.raises(VocabularyError, match="Give a reason"):
        dimension_delete(dimension=dimension, actor=superuser, reason=" ")
    dimension_delete(dimension=dimension, actor=superuser, reason="unused")
    assert log() == ["created", "renamed", "recoloured", "deleted"]
    assert TagVersion.objects.get(action="renamed").reason == "clearer"
    with pytest.raises(TagPermissionDenied):
        dimension_save(dimension=Dimension(name="Neu"), actor=user_in_role("marketer"))


def test_archived_dimension_keeps_assignments_and_restore_brings_back_only_its_tags(
        make_dimension, make_tag, make_contact, superuser):
    from tagging.audiences.selectors import contacts_matching

    dimension = make_dimension(name="Saison")
    summer, winter, spring = (make_tag(dimension=dimension, name=n)
                              for n in ("Sommer", "Winter", "Frühling"))
    tag_archive(tag=spring, actor=superuser, reason="no spring sale")
    holder, other = make_contact(), make_contact()
    tags_change(contacts=[holder], add=[summer])

    with pytest.raises(VocabularyError, match="Give a reason"):
        dimension_archive(dimension=dimension, actor=superuser, reason="")
    assert not Tag.objects.filter(pk=summer.pk, is_archived=True).exists()

    result = dimension_archive(dimension=dimension, actor=superuser, reason="season over")

    assert (result.changed, result.tags) == (True, ["Sommer", "Winter"])
    assert set(Tag.objects.filter(dimension=dimension, is_archived=True)
               .values_list("name", flat=True)) == {"Sommer", "Winter", "Frühling"}
    # Cannot be applied any more; what contacts hold stays and segments still see it.
    with pytest.raises(TagChangeError, match="Sommer"):
        tags_change(contacts=[other], add=[Tag.objects.get(pk=summer.pk)])
    assert TagAssignment.objects.filter(tag=summer, contact=holder).exists()
    assert list(contacts_matching('"Sommer"')) == [holder]
    assert list(contacts_matching('"Saison/*"')) == [holder]
    # Nothing new goes into it, and its tags come back only with it.
    with pytest.raises(VocabularyError, match="archived") as refused:
        tag_create(dimension=dimension, name="Herbst", actor=superuser)
    assert refused.value.field == "dimension"
    with pytest.raises(VocabularyError, match="restore the dimension first"):
        tag_restore(tag=Tag.objects.get(pk=winter.pk), actor=superuser)
    entry = TagVersion.objects.get(object_type="dimension", action="archived")
    assert (entry.reason, entry.changes["tags_archived"]) == ("season over",
                                                              ["Sommer", "Winter"])
    assert "season over" in TagVersion.objects.get(object_type="tag", object_id=winter.pk,
                                                   action="archived").reason
    again = dimension_archive(dimension=dimension, actor=superuser, reason="again")
    assert again.changed is False
    assert TagVersion.objects.filter(object_type="dimension", action="archived").count() == 1

    restored = dimension_restore(dimension=dimension, actor=superuser, reason="back")

    assert restored.tags == ["Sommer", "Winter"]
    assert set(Tag.objects.filter(dimension=dimension, is_archived=True)
               .values_list("name", flat=True)) == {"Frühling"}
    assert tags_change(contacts=[other], add=[Tag.objects.get(pk=summer.pk)]).added == 1
    def tag_log(tag):
        return list(TagVersion.objects.filter(object_type="tag", object_id=tag.pk)
                    .order_by("id").values_list("action", flat=True))

    assert tag_log(winter) == ["archived", "restored"]
    assert tag_log(spring) == ["archived"]
    assert TagVersion.objects.get(object_type="dimension", action="restored").changes[
        "tags_still_archived"] == ["Frühling"]


def test_tag_and_dimension_forms_of_an_archived_dimension_are_refused(make_dimension, make_tag,
                                                                    superuser):
    open_dim, closed = make_dimension(name="Offen"), make_dimension(name="Zu")
    tag = make_tag(dimension=open_dim, name="Wandert")
    dimension_archive(dimension=closed, actor=superuser, reason="closed")
    tag.dimension = closed
    with pytest.raises(VocabularyError, match="“Zu” is archived"):
        tag_save(tag=tag, actor=superuser)
    closed.refresh_from_db()
    closed.is_archived = False
    with pytest.raises(VocabularyError, match="its own action"):
        dimension_save(dimension=closed, actor=superuser)


def test_deleting_a_dimension_deletes_its_tags_with_history_unless_something_needs_it(
        make_dimension, make_tag, make_contact, superuser):
    from tagging.rules.models import Rule

    dimension = make_dimension(name="Quelle")
    flyer, qr = make_tag(dimension=dimension, name="Flyer"), make_tag(dimension=dimension,
                                                                       name="QR-Code")
    tags_change(contacts=make_contact.create_batch(2), add=[flyer, qr])
    rule = Rule.objects.create(name="Quelle merken", add_template="Quelle {date}",
                               template_dimension=dimension)
    rule.add_tags.add(flyer)

    refs = {r.label: r.count for r in dimension_references(dimension)}
    assert refs == {"tags": 2, "tag holdings": 4, "rules": 1}
    with pytest.raises(VocabularyError, match="still used by rules"):
        dimension_delete(dimension=dimension, actor=superuser, reason="obsolete")
    assert TagAssignment.objects.count() == 4 and Tag.objects.count() == 2
    assert not TagVersion.objects.filter(action="deleted").exists()

    rule.delete()
    removed = dimension_delete(dimension=dimension, actor=superuser, reason="obsolete")

    assert removed == 4
    assert not Tag.objects.exists() and not TagAssignment.objects.exists()
    assert AssignmentHistory.objects.filter(action="removed").count() == 4
    entry = TagVersion.objects.get(object_type="dimension", action="deleted")
    assert (entry.reason, entry.changes["tags_deleted"], entry.changes["holdings_removed"]) == (
        "obsolete", ["Flyer", "QR-Code"], 4)
    assert TagVersion.objects.filter(object_type="tag", action="deleted").count() == 2


def test_references_include_hidden_relations_from_other_apps(make_tag):
    from campaigns.models import KeywordRule

    tag = make_tag(name="Fragt-Preis")
    KeywordRule.objects.create(name="Preis", keywords="preis,kosten", tag=tag)
    refs = {r.label: r.count for r in tag_references(tag)}
    assert refs == {"keyword rules": 1}
    assert {r.label: r.count for r in dimension_references(tag.dimension)}["keyword rules"] == 1


def test_rules_and_imports_create_no_tags_in_an_archived_dimension(make_dimension, superuser):
    from tagging.imports.models import ImportJob
    from tagging.imports.services import ImportRefused, import_check_options
    from tagging.rules.models import Rule
    from tagging.rules.services import rule_validate

    dimension = make_dimension(name="Gekauft")
    dimension_archive(dimension=dimension, actor=superuser, reason="old scheme")
    rule = Rule(name="Kauf", add_template="Gekauft {date}", template_dimension=dimension)

    assert "archived" in rule_validate(rule)["template_dimension"]
    with pytest.raises(ImportRefused, match="“Gekauft” is archived"):
        import_check_options(job=ImportJob(actor=superuser, unknown_tags="create",
                                           missing_tags_dimension=dimension))


def test_expressions_naming_a_tag_are_listed_before_it_is_deleted(make_tag, make_dimension):
    """Saved segments, rule conditions and campaign audiences count, wildcards included."""
    from campaigns.models import Template
    from campaigns.services import campaign_create
    from tagging.audiences.models import Segment
    from tagging.rules.models import Rule

    stage = make_dimension(name="Phase")
    vip, other = make_tag(name="VIP", dimension=stage), make_tag(name="Neu")
    Segment.objects.create(name="VIPs", expression='"VIP" AND purchases > 1')
    Segment.objects.create(name="Any phase", expression='NOT "Phase/*"')
    Segment.objects.create(name="Others", expression='"Neu"')
    Rule.objects.create(name="VIP-Regel", segment='"VIP" OR purchases > 9',
                        add_template="x {date}")
    template = Template.objects.create(name="t", language="de", body="Hallo")
    campaign_create(name="Sale", template=template, audience="purchases > 0",
                    suppression='"VIP"')
    refs = {r.label: r.count for r in tag_references(vip)}
    assert refs["saved segments naming it"] == 2
    assert refs["rules whose condition names it"] == 1
    assert refs["campaigns whose audience names it"] == 1
    assert {r.label: r.count for r in tag_references(other)} == {"saved segments naming it": 1}


# --- values that reach HTML and CSS (#14) --------------------------------------------------


@pytest.mark.parametrize("colour", ["red;background:url(https://evil/x)", "#12345", "#1234567",
                                    "#ggg", "rgb(0,0,0)", "#fff;", " #fff", "#4c6ef5\x00",
                                    "</style><script>alert(1)</script>"])
def test_the_services_refuse_a_colour_that_is_not_hex(colour):
    from tagging.vocabulary import VocabularyError, dimension_save, tag_create
    from tests.factories import DimensionFactory

    with pytest.raises(VocabularyError, match="is not a colour") as refused:
        dimension_save(dimension=Dimension(name="Quelle", colour=colour))
    assert refused.value.field == "colour"
    with pytest.raises(VocabularyError, match="is not a colour"):
        tag_create(dimension=DimensionFactory(name="Stufe"), name="Gold", colour=colour)
    assert not Tag.objects.filter(name="Gold").exists()
    assert not Dimension.objects.filter(name="Quelle").exists()


def test_hex_colours_and_an_empty_tag_colour_are_kept():
    from tagging.vocabulary import dimension_save, tag_create, tag_save

    dimension = dimension_save(dimension=Dimension(name="Quelle", colour="#1C7ED6"))
    tag = tag_create(dimension=dimension, name="TikTok", colour="#abc", symbol="★")
    assert tag.colour == "#abc"
    tag.colour = ""
    tag_save(tag=tag)
    assert Tag.objects.get(pk=tag.pk).display_colour == "#1C7ED6"


def test_a_control_character_in_a_name_or_symbol_is_refused():
    from tagging.vocabulary import VocabularyError, tag_create
    from tests.factories import DimensionFactory

    dimension = DimensionFactory(name="Stufe")
    with pytest.raises(VocabularyError, match="invisible control character") as refused:
        tag_create(dimension=dimension, name="Gold\x00", colour="")
    assert refused.value.field == "name"
    with pytest.raises(VocabularyError, match="invisible control character"):
        tag_create(dimension=dimension, name="Gold", symbol="\x1b[31m")
    with pytest.raises(VocabularyError, match="at most 8 characters"):
        tag_create(dimension=dimension, name="Gold", symbol="★" * 9)
