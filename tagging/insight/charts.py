"""Server-side SVG charts: no JavaScript, no CDN, readable in a screenshot and in an e-mail.

Each function returns safe markup for a template. Labels are escaped; every
bar and point carries a ``<title>`` so hovering shows the exact value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils import formats
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
INK, MUTED, GRID = "#1f2328", "#57606a", "#d0d7de"


@dataclass
class Bar:
    label: str
    value: float
    colour: str = "#4C6EF5"
    url: str = ""
    text: str = ""  # shown right of the bar; defaults to the value


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f} M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f} k"
    return f"{value:,.0f}".replace(",", " ") if value == int(value) else f"{value:.2f}"


def percent(value: float | None, digits: int = 0) -> str:
    """0.086 → “8.6 %”, “8,6 %” in German: the reader's decimal mark."""
    return "—" if value is None else f"{formats.number_format(value * 100, digits)} %"


def bar_chart(bars: Sequence[Bar], *, width: int = 460, label_width: int = 190,
              row: int = 22, max_value: float | None = None,
              title: str = "") -> SafeString:
    """Horizontal bars, one per row, in each bar's colour; the value written beside it."""
    top = 4
    height = top + row * max(len(bars), 1) + 4
    top_value = max_value or max((b.value for b in bars), default=0) or 1
    plot = width - label_width - 96
    parts = [f'<svg class="tw-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" style="{FONT};max-width:100%">']
    for i, bar in enumerate(bars):
        y = top + i * row
        length = max(bar.value / top_value * plot, 1 if bar.value else 0)
        label = escape(_short(bar.label, 27))
        text = escape(bar.text or _number(bar.value))
        shape = (f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 7}" '
                 f'rx="3" fill="{escape(bar.colour)}"><title>{escape(bar.label)}: {text}</title>'
                 f'</rect>')
        if bar.url:
            shape = f'<a href="{escape(bar.url)}">{shape}</a>'
        parts.append(
            f'<text x="{label_width - 8}" y="{y + row / 2 + 4}" text-anchor="end" '
            f'font-size="12" fill="{INK}">{label}</text>{shape}'
            f'<text x="{label_width + length + 6:.1f}" y="{y + row / 2 + 4}" font-size="12" '
            f'fill="{MUTED}">{text}</text>'
        )
    if not bars:
        parts.append(f'<text x="0" y="16" font-size="12" fill="{MUTED}">—</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


@dataclass
class Series:
    name: str
    values: Sequence[float]
    colour: str = "#4C6EF5"


def line_chart(series: Sequence[Series], labels: Sequence[str], *, width: int = 460,
               height: int = 190, fmt: Callable[[float], str] = _number,
               title: str = "", zero_based: bool = True) -> SafeString:
    """Lines over time with a light grid, the labels under the x axis and the last value named."""
    left, right, top, bottom = 52, 86, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values]
    high = max(values, default=1) or 1
    low = 0 if zero_based else min(values, default=0)
    if high == low:
        high = low + 1
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return left + i * plot_w / (n - 1)

    def y(v: float) -> float:
        return top + plot_h - (v - low) / (high - low) * plot_h

    parts = [f'<svg class="tw-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" style="{FONT};max-width:100%">']
    for k in range(5):
        v = low + (high - low) * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                     f'stroke="{GRID}" stroke-width="1"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="{MUTED}">{escape(fmt(v))}</text>')
    step = max(1, len(labels) // 6)
    for i, label in enumerate(labels):
        if (len(labels) - 1 - i) % step == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="middle" '
                         f'font-size="11" fill="{MUTED}">{escape(label)}</text>')
    for s in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        colour = escape(s.colour)
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                     f'stroke-width="2.5" stroke-linejoin="round"/>')
        for i, v in enumerate(s.values):
            label = labels[i] if i < len(labels) else ""
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(s.name)} {escape(label)}: {escape(fmt(v))}</title>'
                         f'</circle>')
        if s.values:
            last = s.values[-1]
            parts.append(f'<text x="{x(len(s.values) - 1) + 8:.1f}" y="{y(last) + 4:.1f}" '
                         f'font-size="12" font-weight="600" fill="{colour}">'
                         f'{escape(fmt(last))}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def stacked_bar(parts: Sequence[Bar], *, width: int = 460, title: str = "") -> SafeString:
    """One 100% bar split into parts, with a legend of label, count and share below."""
    total = sum(p.value for p in parts) or 1
    height = 34 + 20 * len(parts)
    out = [f'<svg class="tw-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" style="{FONT};max-width:100%">']
    x = 0.0
    for p in parts:
        w = p.value / total * width
        out.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="22" '
                   f'fill="{escape(p.colour)}"><title>{escape(p.label)}: '
                   f'{_number(p.value)}</title></rect>')
        if w > 40:
            out.append(f'<text x="{x + w / 2:.1f}" y="15" text-anchor="middle" font-size="12" '
                       f'font-weight="600" fill="#fff">{percent(p.value / total)}</text>')
        x += w
    for i, p in enumerate(parts):
        y = 34 + 20 * i
        label = escape(p.label)
        if p.url:
            label = f'<a href="{escape(p.url)}">{label}</a>'
        out.append(f'<rect x="0" y="{y}" width="12" height="12" rx="2" '
                   f'fill="{escape(p.colour)}"/><text x="18" y="{y + 11}" font-size="12" '
                   f'fill="{INK}">{label}: {escape(p.text or _number(p.value))} '
                   f'({percent(p.value / total)})</text>')
    out.append("</svg>")
    return mark_safe("".join(out))
