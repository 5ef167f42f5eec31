"""Each health finding at its thresholds, with hand-built data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from tagging.insight import usage
from tagging.insight.selectors import (
    count_band,
    dimension_band,
    find_count_health,
    health_findings,
    levenshtein,
)
from tagging.models import Tag, TagVersion
from tests.factories import DimensionFactory, TagFactory
from tests.insight.conftest import ADDED, REMOVED, history

pytestmark = pytest.mark.django_db


def names(findings: list[dict]) -> set[str]:
    return {f["name"] for f in findings}


def test_inactive_tags_are_those_unused_for_30_days_or_more(tag, contacts, now):
    holder = contacts(1)[0]
    for days in (29, 30, 31):
        t = tag(f"Angebot {days}")
        history(holder, t, ADDED, now - timedelta(days=days))
    tag("Nie benutzt")

    found = health_findings(now=now)["inactive"]

    assert names(found) == {"Angebot 30", "Angebot 31", "Nie benutzt"}
    by_name = {f["name"]: f for f in found}
    assert by_name["Angebot 31"]["idle_days"] == 31
    assert by_name["Angebot 31"]["suggestion"] == "archive"
    tag_id = by_name["Angebot 31"]["id"]
    assert by_name["Angebot 31"]["url"] == f"/admin/tagging/tag/{tag_id}/change/"
    assert by_name["Nie benutzt"]["last_used_at"] is None


def test_a_new_tag_is_not_inactive_before_its_30_days(tag, now):
    tag("Frisch", created_at=now - timedelta(days=29))
    tag("Alt", created_at=now - timedelta(days=30))

    assert names(health_findings(now=now)["inactive"]) == {"Alt"}


@override_settings(TAGWERK_INSIGHT={"INACTIVE_DAYS": 7})
def test_inactive_days_are_configurable(tag, contacts, now):
    t = tag("Wochenaktion")
    history(contacts(1)[0], t, ADDED, now - timedelta(days=8))

    assert names(health_findings(now=now)["inactive"]) == {"Wochenaktion"}


def test_a_registered_usage_provider_keeps_a_tag_active(tag, now):
    """A campaign audience or segment that used the tag counts, through the registry."""
    t = tag("Frühlingsaktion")
    usage.register_usage_provider("test-segments", lambda *, since: {t.pk: now - timedelta(days=2)})
    try:
        assert "Frühlingsaktion" not in names(health_findings(now=now)["inactive"])
    finally:
        usage.unregister_usage_provider("test-segments")
    assert "Frühlingsaktion" in names(health_findings(now=now)["inactive"])


def test_overloaded_means_more_than_40_percent_of_contacts(tag, contacts, now):
    people = contacts(10, idle_days=1) + contacts(11, idle_days=30) + contacts(79, idle_days=100)
    tag("Neununddreißig", holders=people[:39])
    tag("Vierzig", holders=people[:40])
    tag("Einundvierzig", holders=people[:41])

    found = health_findings(now=now)["overloaded"]

    assert names(found) == {"Einundvierzig"}
    assert found[0]["share"] == 0.41
    assert found[0]["spread"] == {"high": 10, "watching": 11, "churn": 20}
    assert len(found[0]["suggested_split"]) >= 3


@pytest.mark.parametrize(("n", "band"), [
    (29, "too_coarse"), (30, "healthy"), (31, "healthy"), (80, "healthy"), (81, "large"),
    (100, "large"), (101, "hard_to_run"),
])
def test_tag_count_bands(n, band):
    assert count_band(n) == band


@pytest.mark.parametrize(("n", "band"), [(1, "too_coarse"), (2, "healthy"), (20, "healthy"),
                                          (21, "hard_to_run")])
def test_dimension_tag_count_bands(n, band):
    assert dimension_band(n) == band


def test_count_health_counts_active_tags_per_dimension(now):
    big, small = DimensionFactory(name="Groß"), DimensionFactory(name="Klein")
    for i in range(29):
        TagFactory(name=f"Groß {i}", dimension=big)
    TagFactory(name="Einsam", dimension=small)
    TagFactory(name="Archiviert", dimension=small, is_archived=True)
    tags = list(Tag.objects.filter(is_archived=False).select_related("dimension"))

    health = find_count_health(tags[:29])
    assert (health["total"], health["band"]) == (29, "too_coarse")
    health = find_count_health(tags)
    assert (health["total"], health["band"]) == (30, "healthy")
    dims = {d["name"]: d for d in health["dimensions"]}
    assert (dims["Groß"]["count"], dims["Groß"]["band"]) == (29, "hard_to_run")
    assert (dims["Klein"]["count"], dims["Klein"]["band"]) == (1, "too_coarse")
    assert dims["Klein"]["tags"] == ["Einsam"]


def test_stale_assignments_start_at_180_days_without_interaction(tag, contacts, now):
    silent_179, silent_180, silent_181 = (contacts(1, idle_days=d)[0] for d in (179, 180, 181))
    never_old = contacts(1, created_at=now - timedelta(days=200))[0]
    never_new = contacts(1, created_at=now - timedelta(days=10))[0]
    tag("Stammkunde", holders=[silent_179, silent_180, silent_181, never_old, never_new])

    stale = health_findings(now=now)["stale"]

    assert stale["stale_assignments"] == 3
    assert stale["assignments"] == 5
    [row] = stale["tags"]
    assert (row["name"], row["stale"], row["holders"]) == ("Stammkunde", 3, 5)
    assert row["contacts_url"] == f"/admin/crm/contact/?insight_tag={row['id']}&insight_idle=180"


def test_sleeping_vips_are_vip_like_purchasing_power_holders_silent_180_days(tag, contacts, now):
    kaufkraft = DimensionFactory(name="Kaufkraft")
    awake, asleep, deep = (contacts(1, idle_days=d)[0] for d in (179, 180, 400))
    rich = contacts(1, idle_days=300)[0]
    tag("VIP", kaufkraft, holders=[awake, asleep])
    tag("SVIP", kaufkraft, holders=[deep])
    tag("Hochwertiger Kunde", kaufkraft, holders=[rich])
    tag("VIP-Lounge Interesse", holders=[rich])  # VIP-like, but not purchasing power
    tag("Historischer Bestand - Reaktivierung erforderlich", kaufkraft)

    vips = health_findings(now=now)["sleeping_vips"]

    assert vips["count"] == 2
    assert vips["vip_holders"] == 3
    assert {t["name"]: t["sleeping"] for t in vips["tags"]} == {"VIP": 1, "SVIP": 1}
    assert vips["target_exists"] is True


def test_near_twins_by_name(tag):
    tag("Bestellt")
    tag("Bestelt")  # a typo: one edit
    tag("Interesse-Essen", DimensionFactory(name="Interesse"))
    tag("Interesse-Reisen", Tag.objects.get(name="Interesse-Essen").dimension)
    kaufphase = DimensionFactory(name="Kaufphase")
    tag("Kaufphase-Abgeschlossen", kaufphase)
    tag("Abgeschlossen")

    pairs = {frozenset(p["tags"]): p for p in health_findings()["near_twins"]}

    assert set(pairs) == {frozenset({"Bestellt", "Bestelt"}),
                          frozenset({"Kaufphase-Abgeschlossen", "Abgeschlossen"})}
    assert pairs[frozenset({"Bestellt", "Bestelt"})]["reasons"] == ["near_name"]
    assert pairs[frozenset({"Kaufphase-Abgeschlossen", "Abgeschlossen"})]["reasons"] == \
        ["same_name"]


@override_settings(TAGWERK_INSIGHT={"TWIN_SYNONYMS": [["Bestellt", "Bezahlt"]]})
def test_near_twins_by_configured_synonym(tag):
    tag("Bestellt")
    tag("Bezahlt")

    [pair] = health_findings()["near_twins"]
    assert set(pair["tags"]) == {"Bestellt", "Bezahlt"}
    assert "synonym" in pair["reasons"]


@pytest.mark.parametrize(("size_a", "size_b", "both", "twin"), [
    (95, 94, 89, False),  # 89 / 100
    (95, 95, 90, True),   # 90 / 100
    (96, 95, 91, True),   # 91 / 100
])
def test_near_twins_by_holder_overlap_from_90_percent(tag, contacts, size_a, size_b, both, twin):
    people = contacts(size_a + size_b - both)
    tag("Alpha Gruppe", holders=people[:size_a])
    tag("Zebra Liste", holders=people[size_a - both:size_a - both + size_b])

    pairs = health_findings()["near_twins"]

    assert bool(pairs) is twin
    if twin:
        assert pairs[0]["reasons"] == ["overlap"]
        assert pairs[0]["overlap"] == both / 100


def test_a_small_tag_inside_a_big_one_is_not_a_twin(tag, contacts):
    people = contacts(100)
    tag("Alle Kunden", holders=people)
    tag("Wenige", holders=people[:50])

    assert health_findings()["near_twins"] == []


def test_levenshtein():
    assert levenshtein("bestellt", "bestelt") == 1
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("abc", "abc") == 0


def test_orphans_are_active_tags_without_holders(tag, contacts):
    tag("Gehalten", holders=contacts(1))
    tag("Verwaist")
    tag("Archiviert verwaist", is_archived=True)

    assert names(health_findings()["orphans"]) == {"Verwaist"}


def test_vocabulary_added_and_retired_this_quarter(now):
    from tagging.insight.selectors import quarter_start

    start = quarter_start(now)
    TagVersion.objects.create(at=start + timedelta(hours=1), action="created", object_type="tag",
                              object_id=1, object_name="Neu im Quartal")
    TagVersion.objects.create(at=start + timedelta(hours=2), action="archived",
                              object_type="tag", object_id=2, object_name="Frühling",
                              reason="Aktion vorbei")
    TagVersion.objects.create(at=start - timedelta(hours=1), action="created", object_type="tag",
                              object_id=3, object_name="Letztes Quartal")

    vocabulary = health_findings(now=now)["vocabulary"]

    assert [e["name"] for e in vocabulary["added"]] == ["Neu im Quartal"]
    assert [(e["name"], e["reason"]) for e in vocabulary["retired"]] == \
        [("Frühling", "Aktion vorbei")]


def test_average_assignment_lifetime_from_history(tag, contacts, now):
    a, b, c = contacts(3)
    t = tag("Neukunde", holders=[c])
    start = now - timedelta(days=100)
    history(a, t, ADDED, start)
    history(a, t, REMOVED, start + timedelta(days=10))
    history(b, t, ADDED, start)
    history(b, t, REMOVED, start + timedelta(days=20))
    history(b, t, ADDED, start + timedelta(days=30))  # held again: not ended, not counted

    [row] = [r for r in health_findings(now=now)["lifetimes"] if r["name"] == "Neukunde"]

    assert (row["ended"], row["avg_days"]) == (2, 15.0)
    assert (row["open"], row["open_avg_days"]) == (1, 400.0)


@pytest.mark.parametrize(("size", "twin"), [(94, False), (95, True), (96, True)])
def test_near_twins_on_a_large_base_are_found_through_a_sample(tag, contacts, monkeypatch,
                                                                size, twin):
    from tagging.insight import selectors

    monkeypatch.setattr(selectors, "SAMPLE_ASSIGNMENTS", 60)  # ~190 assignments: every 3rd
    people = contacts(100)  # the two tags share 2 × size − 100 of 100: 88, 90, 92 %
    tag("Alpha Gruppe", holders=people[:size])
    tag("Zebra Liste", holders=people[100 - size:])

    pairs = health_findings()["near_twins"]

    assert bool(pairs) is twin
    if twin:
        assert pairs[0]["overlap"] == (2 * size - 100) / 100


def test_a_numbered_series_is_not_a_twin(tag):
    tag("Kampagne 2024")
    tag("Kampagne 2025")
    assert health_findings()["near_twins"] == []
