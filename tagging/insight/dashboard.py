"""The dashboard on the admin index: the latest snapshot turned into charts.

The page reads one snapshot row and the latest report's summary — two small
queries whatever the number of contacts. The snapshot is refreshed by beat
(``dashboard_refresh_task``); on an empty small database the first visit
computes it in place, on a large one it is queued.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.cache import cache
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from crm.jobs import enqueue
from crm.models import Contact
from tagging.insight import charts
from tagging.insight.conf import insight_setting
from tagging.insight.selectors import (
    analytics_url,
    contacts_admin_url,
    dashboard_snapshot_latest,
    report_headline,
    report_latest,
)
from tagging.insight.services import dashboard_snapshot_refresh
from tagging.insight.tasks import dashboard_refresh_task
from tagging.insight.usage import panels
from tagging.models import AssignmentHistory

ACTIVITY_COLOURS = {"high": "#2F9E44", "watching": "#F08C00", "churn": "#E03131"}


def _snapshot():
    snapshot = dashboard_snapshot_latest()
    if snapshot is not None:
        return snapshot
    # A small base gets its dashboard at once. The count stops at the limit, so
    # deciding costs next to nothing on a million contacts.
    limit = insight_setting("SYNC_DASHBOARD_MAX_CONTACTS")
    if Contact.objects.order_by()[: limit + 1].count() <= limit:
        return dashboard_snapshot_refresh()
    enqueue(dashboard_refresh_task.name)
    return None


# --- freshness: the snapshot is recomputed in the background once something changed ---------

# Apps above insight tell when they last changed what the dashboard shows (campaigns: the
# latest launch); the core's own changes are read here. Each probe is one indexed query.
ChangeProbe = Callable[[], datetime | None]
_change_probes: dict[str, ChangeProbe] = {}


def register_change_probe(name: str, probe: ChangeProbe) -> None:
    _change_probes[name] = probe


def _last_tag_change() -> datetime | None:
    return AssignmentHistory.objects.order_by("-id").values_list("at", flat=True).first()


def _last_new_contact() -> datetime | None:
    return Contact.objects.order_by("-created_at").values_list("created_at", flat=True).first()


register_change_probe("tags", _last_tag_change)
register_change_probe("contacts", _last_new_contact)

REFRESH_QUEUED_KEY = "insight:dashboard:refresh-queued"


LAST_CHANGE_KEY = "insight:dashboard:last-change"


def last_change() -> datetime | None:
    """The latest change any probe knows of (asked at most every 15 seconds)."""
    def ask():
        return max((at for probe in _change_probes.values() if (at := probe()) is not None),
                   default=None)
    return cache.get_or_set(LAST_CHANGE_KEY, ask, 15)


def changed_since(at: datetime) -> bool:
    changed = last_change()
    return changed is not None and changed > at


def refresh_if_stale(snapshot) -> bool:
    """Queue a background refresh when something changed after ``snapshot`` (once a minute
    at most, however many people look at the page); True while one is due."""
    if snapshot is None or not changed_since(snapshot.created_at):
        return False
    if cache.add(REFRESH_QUEUED_KEY, 1, 60):
        enqueue(dashboard_refresh_task.name)
    return True


def _age_text(at: datetime, now: datetime) -> str:
    minutes = int((now - at).total_seconds() // 60)
    if minutes < 1:
        return _("just now")
    if minutes < 120:
        return _("%(n)d min ago") % {"n": minutes}
    return _("%(n)d h ago") % {"n": minutes // 60}


def dashboard_context() -> dict:
    snapshot = _snapshot()
    report = report_latest()
    context: dict = {
        "report": report,
        "report_headline": report_headline(report.summary) if report else [],
        "refresh_url": reverse("admin:insight_healthreport_dashboard_refresh"),
        "reports_url": reverse("admin:insight_healthreport_changelist"),
        "analytics_url": reverse("admin:insight_healthreport_analytics"),
        "snapshot": snapshot,
    }
    if snapshot is None:
        return context
    data = snapshot.data
    now = timezone.now()
    context["stale"] = refresh_if_stale(snapshot)
    context["as_of"] = formats.date_format(timezone.localtime(snapshot.created_at),
                                           "SHORT_DATETIME_FORMAT")
    contacts = data["contacts"]
    activity = data["activity"]
    days = data["activity_days"]
    context.update({
        "data": data,
        "age": _age_text(snapshot.created_at, now),
        "contacts": contacts,
        "consented_pct": charts.percent(contacts["consented_share"], 1),
        "activity_chart": charts.stacked_bar([
            charts.Bar(_("high activity (< %(d)d days)") % {"d": days["high"]},
                       activity["high"], ACTIVITY_COLOURS["high"],
                       url=contacts_admin_url()),
            charts.Bar(_("needs watching"), activity["watching"], ACTIVITY_COLOURS["watching"],
                       url=contacts_admin_url(idle=days["high"])),
            charts.Bar(_("churn risk (≥ %(d)d days)") % {"d": days["churn"]}, activity["churn"],
                       ACTIVITY_COLOURS["churn"], url=contacts_admin_url(idle=days["churn"])),
        ], width=440, title=_("Activity levels")),
        "dimension_charts": [
            {"name": d["name"], "colour": d["colour"], "count": len(d["tags"]),
             "url": analytics_url(dimension=d["id"]),
             "chart": charts.bar_chart(
                 [charts.Bar(t["name"], t["holders"], t["colour"],
                             url=analytics_url(tags=[t["id"]]),
                             text=f"{charts._number(t['holders'])} · "
                                  f"{charts.percent(t['share'])}")
                  for t in d["tags"][:12]],
                 width=430, label_width=190, title=d["name"]),
             "more": max(len(d["tags"]) - 12, 0)}
            for d in data["dimensions"]
        ],
        "panels": [_panel(p) for p in data.get("panels", [])],
        "activity_days": days,
        "has_campaign_panel": any(p["key"] == "campaigns" for p in data.get("panels", [])),
    })
    context.update(_churn(data["churn"]))
    return context


def _churn(churn: dict) -> dict:
    points = churn["points"]
    if not points:
        return {}
    start = datetime.fromisoformat(churn["history_start"]) if churn.get("history_start") \
        else None
    if "history_start" not in churn:  # a snapshot from before the history start was kept
        known = points
    else:
        known = [p for p in points if start is not None and p.get("at")
                 and datetime.fromisoformat(p["at"]) >= start]
    context = {
        "churn_rate": charts.percent(points[-1]["rate"], 1),
        "churn_tags": churn["tags"],
        "churn_since": formats.date_format(timezone.localtime(start), "SHORT_DATE_FORMAT")
        if start else "",
        "churn_weeks": len(known),
    }
    if len(known) >= 2:
        context["churn_chart"] = charts.line_chart(
            [charts.Series(_("churn rate"), [p["rate"] for p in known], "#E03131")],
            [p["label"] for p in known], width=440, height=180,
            fmt=lambda v: charts.percent(v, 1), title=_("Churn rate, last 12 weeks"))
    return context


def _panel(entry: dict) -> dict:
    data = entry.get("data") or {}
    rows = []
    for row in data.get("rows", []):
        cells = []
        for cell in row:
            if isinstance(cell, dict):
                cells.append({"text": cell.get("text", ""), "band": cell.get("band", ""),
                              "url": cell.get("url", "")})
            else:
                cells.append({"text": cell, "band": "", "url": ""})
        rows.append(cells)
    # The snapshot was computed by a worker in the source language: the texts are shown in
    # the reader's (a registered panel's title is lazy; stored texts are looked up as msgids).
    registered = {p.key: p for p in panels()}
    title = registered[entry["key"]].title if entry["key"] in registered else entry["title"]
    link = data.get("link")
    if link:
        link = {**link, "label": gettext(link.get("label", ""))}
    return {"key": entry["key"], "title": str(title), "error": entry.get("error", ""),
            "columns": [gettext(c) for c in data.get("columns", [])], "rows": rows,
            "empty": gettext(data.get("empty", "")) if data.get("empty") else "",
            "link": link}

