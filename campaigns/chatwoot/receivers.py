"""How the Chatwoot app listens to the tagging core (connected in ``ChatwootConfig.ready``)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from campaigns.chatwoot.models import ChatwootConnection
from campaigns.chatwoot.services import OPERATION_TASK
from crm.jobs import enqueue


def on_tags_changed(sender, result, actor=None, source="", **kwargs) -> None:
    """Queue the label push for a tag change, when any connection syncs a dimension.

    Which contacts, and whether the change came from Chatwoot, the task reads from the
    operation's history: the signal is sent after commit, so it is there.
    """
    if ChatwootConnection.objects.filter(active=True, dimensions__isnull=False).exists():
        enqueue(OPERATION_TASK, str(result.operation))


def sidebar_ref_label(agent: str) -> str:
    return _("by %(agent)s in Chatwoot") % {"agent": agent}


def label_ref_label(agent: str) -> str:
    return _("label set by %(agent)s in Chatwoot") % {"agent": agent}
