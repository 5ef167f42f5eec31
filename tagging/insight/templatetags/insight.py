"""``{% insight_dashboard as dash %}``: the dashboard's context on the admin index."""

from django import template
from django.utils.translation import gettext

from tagging.insight.charts import percent
from tagging.insight.dashboard import dashboard_context
from tagging.insight.selectors import BAND_TEXT
from tagging.insight.usage import usage_label as _usage_label

register = template.Library()


@register.simple_tag
def insight_dashboard() -> dict:
    return dashboard_context()


@register.filter
def pct(value, digits: int = 0) -> str:
    """0.4123 → “41 %”; None → “—”."""
    try:
        return percent(None if value in (None, "") else float(value), int(digits))
    except (TypeError, ValueError):
        return "—"


@register.filter
def band_text(value: str) -> str:
    """A tag-count band code (``too_coarse``) as words (“too coarse”)."""
    return gettext(BAND_TEXT.get(value, value))


@register.filter
def usage_label(value: str) -> str:
    """A usage provider's name stored in a report (``rules``) as words (“a rule”)."""
    return _usage_label(value)
