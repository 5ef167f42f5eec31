"""How journeys hear about tag changes and events (wired in ``JourneysConfig.ready``).

Both run after the change committed. They cost one query when no active journey
listens to that kind of trigger.
"""

from __future__ import annotations

from campaigns.journeys.models import Journey, JourneyTrigger
from campaigns.journeys.services import journeys_enroll_events, journeys_enroll_tag_changes
from tagging.models import AssignmentHistory

TAG_TRIGGERS = (JourneyTrigger.TAG_ADDED, JourneyTrigger.TAG_REMOVED)


def on_tags_changed(sender, *, result, **kwargs) -> None:
    tags = set(Journey.objects.filter(active=True, trigger__in=TAG_TRIGGERS)
               .values_list("trigger_tag_id", flat=True))
    if not tags:
        return
    changes = list(AssignmentHistory.objects.filter(
        operation=result.operation, tag_id__in=tags).values_list("contact_id", "tag_id",
                                                                 "action"))
    if changes:
        journeys_enroll_tag_changes(operation=result.operation, changes=changes)


def on_events_recorded(sender, *, events, **kwargs) -> None:
    if not Journey.objects.filter(active=True, trigger=JourneyTrigger.EVENT).exists():
        return
    journeys_enroll_events(events=[(e.contact_id, e.kind) for e in events])
