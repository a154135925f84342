"""The dashboard's charts, drawn on the server as inline SVG: no script, no library, no CDN.

Each chart is an ``<svg role="img">`` named by its ``<title>`` and described in words by its
``<desc>`` (every figure it shows), so a screen reader reads the same numbers the bars draw; the
pages also show each chart's data as a table. Colours are from one palette whose text and bar
colours reach a contrast of at least 4.5:1 on white (WCAG AA).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

#: Bars: dark blue (8.6:1 on white); the p90 marks: dark orange (4.9:1); text: near black.
BAR = "#1d4f91"
SECOND = "#b04a00"
TEXT = "#1a1a1a"
GRID = "#8a8a8a"
WIDTH = 720
LABEL_WIDTH = 170
ROW = 30
#: The room a label's character takes at the charts' font size (13 px sans-serif), and the longest
#: label drawn in full (longer ones end with an ellipsis; the description has them whole).
CHARACTER_WIDTH = 7.2
LONGEST_LABEL = 42


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length, and the text shown at its end (the value, formatted)."""

    label: str
    value: float
    text: str


@dataclass(frozen=True)
class SpanBar:
    """One row of a time chart: the median (the bar) and the p90 (a mark), in days."""

    label: str
    median: float | None
    p90: float | None


def _open(chart_id: str, title: str, description: str, height: int) -> str:
    return (f'<svg class="chart" id="{escape(chart_id)}" role="img" viewBox="0 0 {WIDTH} {height}" '
            f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
            f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="13">'
            f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
            f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>')


def _empty(chart_id: str, title: str) -> Markup:
    return Markup(_open(chart_id, title, "No data for these filters.", 40)
                  + f'<text x="0" y="25" fill="{TEXT}">No data for these filters.</text></svg>')


def _label_width(labels: Sequence[str]) -> float:
    """Room for the longest label (within 100 and ``LONGEST_LABEL`` characters' worth)."""
    longest = max((min(len(label), LONGEST_LABEL) for label in labels), default=0)
    return max(100.0, longest * CHARACTER_WIDTH + 14)


def _short(label: str) -> str:
    return label if len(label) <= LONGEST_LABEL else label[:LONGEST_LABEL - 1] + "…"


def _label(x: float, y: float, text: str, anchor: str = "end") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" fill="{TEXT}" text-anchor="{anchor}">{escape(text)}</text>'


def horizontal_bars(chart_id: str, title: str, bars: Sequence[Bar], maximum: float | None = None) -> Markup:
    """A bar per row, labels on the left, values at the bars' ends; ``maximum`` is the full
    length (default: the largest value), e.g. 1 for shares."""
    if not bars:
        return _empty(chart_id, title)
    top = maximum if maximum else max((bar.value for bar in bars), default=0) or 1
    left = _label_width([bar.label for bar in bars])
    room = WIDTH - left - 90
    height = ROW * len(bars) + 10
    parts = [_open(chart_id, title, "; ".join(f"{bar.label}: {bar.text}" for bar in bars), height)]
    for row, bar in enumerate(bars):
        y = 5 + row * ROW
        length = max(0.0, min(1.0, bar.value / top)) * room
        parts.append(_label(left - 8, y + 18, _short(bar.label)))
        parts.append(f'<rect x="{left:.1f}" y="{y + 4}" width="{length:.1f}" height="{ROW - 10}" fill="{BAR}"/>')
        parts.append(_label(left + length + 6, y + 18, bar.text, "start"))
    parts.append(f'<line x1="{left:.1f}" y1="2" x2="{left:.1f}" y2="{height - 3}" stroke="{GRID}"/></svg>')
    return Markup("".join(parts))


def funnel(chart_id: str, title: str, stages: Sequence[Bar]) -> Markup:
    """The funnel: one centred bar per stage, as wide as its count against the first stage's,
    with the count and the share of the first stage beside it."""
    if not stages or not any(stage.value for stage in stages):
        return _empty(chart_id, title)
    top = max(stage.value for stage in stages) or 1
    room = WIDTH - LABEL_WIDTH - 120
    middle = LABEL_WIDTH + room / 2
    height = ROW * len(stages) + 10
    parts = [_open(chart_id, title, "; ".join(f"{stage.label}: {stage.text}" for stage in stages), height)]
    for row, stage in enumerate(stages):
        y = 5 + row * ROW
        length = max(1.0, stage.value / top * room) if stage.value else 0.0
        parts.append(_label(LABEL_WIDTH - 8, y + 18, stage.label))
        parts.append(f'<rect x="{middle - length / 2:.1f}" y="{y + 3}" width="{length:.1f}" height="{ROW - 8}" '
                     f'fill="{BAR}"/>')
        parts.append(_label(LABEL_WIDTH + room + 8, y + 18, stage.text, "start"))
    parts.append("</svg>")
    return Markup("".join(parts))


def time_in_stage(chart_id: str, title: str, rows: Sequence[SpanBar]) -> Markup:
    """Days between stages: the median as a bar, the p90 as a mark on the same row, one scale."""
    rows = [row for row in rows if row.median is not None or row.p90 is not None]
    if not rows:
        return _empty(chart_id, title)
    top = max(max(row.median or 0, row.p90 or 0) for row in rows) or 1
    room = WIDTH - LABEL_WIDTH - 190
    height = ROW * len(rows) + 34
    described = "; ".join(f"{row.label}: median {_days(row.median)}, p90 {_days(row.p90)}" for row in rows)
    parts = [_open(chart_id, title, described, height)]
    for index, row in enumerate(rows):
        y = 5 + index * ROW
        median = (row.median or 0) / top * room
        parts.append(_label(LABEL_WIDTH - 8, y + 18, row.label))
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y + 6}" width="{median:.1f}" height="{ROW - 14}" fill="{BAR}"/>')
        if row.p90 is not None:
            p90 = LABEL_WIDTH + row.p90 / top * room
            parts.append(f'<rect x="{p90 - 2:.1f}" y="{y + 2}" width="4" height="{ROW - 6}" fill="{SECOND}"/>')
        parts.append(_label(LABEL_WIDTH + room + 12, y + 18, f"{_days(row.median)} (p90 {_days(row.p90)})",
                            "start"))
    legend_y = height - 10
    parts.append(f'<rect x="{LABEL_WIDTH}" y="{legend_y - 10}" width="14" height="10" fill="{BAR}"/>')
    parts.append(_label(LABEL_WIDTH + 20, legend_y, "median days", "start"))
    parts.append(f'<rect x="{LABEL_WIDTH + 130}" y="{legend_y - 12}" width="4" height="14" fill="{SECOND}"/>')
    parts.append(_label(LABEL_WIDTH + 140, legend_y, "90th percentile", "start"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} d"
