"""The dashboard on the admin index: the latest snapshot turned into charts.

The page reads one snapshot row and the latest report's summary — two small
queries whatever the number of contacts. The snapshot is refreshed by beat
(``dashboard_refresh_task``); on an empty small database the first visit
computes it in place, on a large one it is queued.
"""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

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
    dashboard_refresh_task.delay_on_commit()
    return None


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
        "has_campaign_panel": any(p["key"] == "campaigns" for p in data.get("panels", [])),
    })
    churn = data["churn"]
    points = churn["points"]
    if points:
        context["churn_rate"] = charts.percent(points[-1]["rate"], 1)
        context["churn_tags"] = churn["tags"]
        context["churn_chart"] = charts.line_chart(
            [charts.Series(_("churn rate"), [p["rate"] for p in points], "#E03131")],
            [p["label"] for p in points], width=440, height=180,
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
    return {"key": entry["key"], "title": entry["title"], "error": entry.get("error", ""),
            "columns": data.get("columns", []), "rows": rows, "empty": data.get("empty", ""),
            "link": data.get("link")}

