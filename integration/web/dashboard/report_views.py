"""What each report page draws from its report: the charts (with their data as tables), the key
figures, and which of the report's columns its HTML table shows (the CSV has them all).

Only the reports' own figures are drawn; nothing here counts or computes a rate. A page grouped
by a dimension draws its per-group charts from the grouped report and its overall ones (the
funnel, the rules behind hand-offs) from the same report ungrouped, which ``overall`` returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from integration.reports import Report, ReportQuery
from integration.web.dashboard import charts
from integration.web.dashboard.common import choice_param, count, days, share

#: The funnel's main path, drawn as the funnel chart.
MAIN_PATH = ("new", "nurture", "mql", "accepted", "sql", "won")
#: The stage steps whose times the time-in-stage chart shows.
TIME_STEPS = ("new->nurture", "nurture->mql", "new->mql", "mql->accepted", "accepted->sql", "sql->won", "mql->won")
#: The conversions the funnel page can show per group.
CONVERSIONS = [*(f"{a}->{b}" for a, b in zip(MAIN_PATH, MAIN_PATH[1:], strict=False)), "new->mql", "new->won",
               "mql->won"]
#: Most bars in a chart of groups or items (the table below has them all).
MOST_BARS = 20

Overall = Callable[[], Report]


@dataclass
class Figure:
    """A chart with its heading and its data as a table (the chart's text alternative)."""

    heading: str
    svg: Markup
    columns: list[str]
    rows: list[list[str]]


@dataclass
class PageView:
    """What a report page shows above its table."""

    figures: list[Figure] = field(default_factory=list)
    #: Key figures: (label, value).
    key_figures: list[tuple[str, str]] = field(default_factory=list)
    #: Extra filters of the page, rendered in the filter form: (name, label, choices, value).
    extra_filters: list[tuple[str, str, list[str], str | None]] = field(default_factory=list)
    #: Which of the report's columns the page's table shows (default: all).
    show_column: Callable[[str], bool] = lambda column: True


def _stage_bars(row: dict[str, Any]) -> list[charts.Bar]:
    entered = row.get("entered") or {}
    first = entered.get("new") or 0
    counts = [(stage, entered.get(stage) or 0) for stage in MAIN_PATH]
    return [charts.Bar(stage, n, f"{n:,}" + (f" ({share(n / first)})" if first else "")) for stage, n in counts]


def funnel_figure(chart_id: str, row: dict[str, Any], heading: str) -> Figure:
    bars = _stage_bars(row)
    return Figure(heading, charts.funnel(chart_id, heading, bars), ["stage", "leads entering (share of new)"],
                  [[bar.label, bar.text] for bar in bars])


def time_figure(chart_id: str, row: dict[str, Any], heading: str) -> Figure:
    median, p90 = row.get("median_days") or {}, row.get("p90_days") or {}
    spans = [charts.SpanBar(step.replace("->", " → "), median.get(step), p90.get(step)) for step in TIME_STEPS]
    return Figure(heading, charts.time_in_stage(chart_id, heading, spans), ["step", "median", "p90"],
                  [[span.label, days(span.median), days(span.p90)] for span in spans])


def share_figure(chart_id: str, heading: str, rows: list[tuple[str, Any]], label: str) -> Figure:
    """Horizontal bars of shares (0..1), one per labelled row."""
    bars = [charts.Bar(name, float(value or 0), share(value)) for name, value in rows]
    return Figure(heading, charts.horizontal_bars(chart_id, heading, bars, maximum=1.0), [label, "share"],
                  [[bar.label, bar.text] for bar in bars])


def count_figure(chart_id: str, heading: str, rows: list[tuple[str, Any]], label: str, what: str) -> Figure:
    """Horizontal bars of counts (or amounts), one per labelled row."""
    bars = [charts.Bar(name, float(value or 0), count(value or 0)) for name, value in rows]
    return Figure(heading, charts.horizontal_bars(chart_id, heading, bars), [label, what],
                  [[bar.label, bar.text] for bar in bars])


def _all_row(report: Report) -> dict[str, Any]:
    return report.rows[0] if report.rows else {}


def _groups(report: Report, value: Callable[[dict[str, Any]], Any], order: str | None = None) -> list[tuple[str, Any]]:
    """(group, value) per row of ``report``; with ``order``, the ``MOST_BARS`` rows largest in it."""
    rows = report.rows
    if order is not None:
        rows = sorted(rows, key=lambda row: -(row.get(order) or 0))[:MOST_BARS]
    return [(str(row["group"]), value(row)) for row in rows]


def _by(query: ReportQuery) -> str:
    return query.by or "all leads"


def draw_funnel(report: Report, query: ReportQuery, overall: Overall) -> PageView:
    step = choice_param("step", CONVERSIONS) or "new->mql"
    view = PageView(extra_filters=[("step", "Conversion shown by group", CONVERSIONS, step)])
    row = _all_row(overall())
    view.figures.append(funnel_figure("funnel-chart", row, "Leads entering each stage"))
    view.figures.append(time_figure("time-chart", row, "Time between stages (days)"))
    view.figures.append(share_figure("conversion-chart", f"Conversion {step.replace('->', ' → ')} by {_by(query)}",
                                     _groups(report, lambda r: (r.get("converted") or {}).get(step)),
                                     query.by or "group"))
    return view


def overview_view(report: Report) -> PageView:
    row = _all_row(report)
    entered, converted = row.get("entered") or {}, row.get("converted") or {}
    median = row.get("median_days") or {}
    view = PageView(key_figures=[
        ("Leads", count(entered.get("new", 0))), ("MQLs", count(entered.get("mql", 0))),
        ("Accepted by sales", count(entered.get("accepted", 0))), ("Won", count(entered.get("won", 0))),
        ("Lead → MQL", share(converted.get("new->mql"))), ("MQL → accepted", share(converted.get("mql->accepted"))),
        ("MQL → won", share(converted.get("mql->won"))),
        ("Median days MQL → accepted", days(median.get("mql->accepted"))),
    ])
    view.figures.append(funnel_figure("funnel-chart", row, "Leads entering each stage"))
    view.figures.append(time_figure("time-chart", row, "Time between stages (days)"))
    return view


def draw_handoff(report: Report, query: ReportQuery, overall: Overall) -> PageView:
    row = _all_row(overall())
    view = PageView(key_figures=[
        ("Hand-offs", count(row.get("handed_off", 0))), ("Accepted", count(row.get("accepted", 0))),
        ("Rejected", count(row.get("rejected", 0))), ("Acceptance rate", share(row.get("acceptance_rate"))),
        ("Median days to accept", days(row.get("median_days_to_accept"))),
        ("Precision (became SQL or won)", share(row.get("precision"))),
    ], show_column=lambda column: not column.startswith(("rules.", "rejection_reasons.")))
    view.figures.append(share_figure("acceptance-chart", f"Acceptance rate by {_by(query)}",
                                     _groups(report, lambda r: r.get("acceptance_rate"), "handed_off"),
                                     query.by or "group"))
    rules = sorted((row.get("rules") or {}).items(), key=lambda item: -item[1].get("handed_off", 0))[:MOST_BARS]
    view.figures.append(share_figure("rules-chart", "Acceptance rate by the rule behind the MQL",
                                     [(f"{name} ({count(entry.get('handed_off'))})", entry.get("acceptance_rate"))
                                      for name, entry in rules], "rule (hand-offs)"))
    reasons = sorted((row.get("rejection_reasons") or {}).items(), key=lambda item: -item[1])
    view.figures.append(count_figure("reasons-chart", "Why sales rejected hand-offs", reasons, "reason",
                                     "hand-offs rejected"))
    return view


def _call_to_action(row: dict[str, Any], grouped: bool) -> str:
    name = f"{row.get('type')}: {row.get('name')}"
    return f"{row['group']} · {name}" if grouped else name


def draw_content(report: Report, query: ReportQuery, overall: Overall) -> PageView:
    top = sorted(report.rows, key=lambda row: -(row.get("leads_touched") or 0))[:MOST_BARS]
    grouped = query.by is not None
    view = PageView()
    view.figures.append(count_figure("touched-chart", "Leads touched per call to action (the most touched)",
                                     [(_call_to_action(r, grouped), r.get("leads_touched")) for r in top],
                                     "call to action", "leads touched"))
    view.figures.append(share_figure("mql-rate-chart", "MQL rate of the leads it touched before their MQL",
                                     [(_call_to_action(r, grouped), r.get("mql_rate")) for r in top],
                                     "call to action"))
    view.figures.append(share_figure("repeat-chart", "Repeat converters: people who had converted elsewhere first",
                                     [(_call_to_action(r, grouped), r.get("repeat_share")) for r in top
                                      if r.get("converters")], "call to action"))
    return view


def draw_sla(report: Report, query: ReportQuery, overall: Overall) -> PageView:
    view = PageView()
    view.figures.append(share_figure("sla-met-chart", f"SLA met by {_by(query)} (hand-offs due that were acted on "
                                     "in time)", _groups(report, lambda r: r.get("met_rate"), "due"),
                                     query.by or "group"))
    view.figures.append(count_figure("sla-missed-chart", f"SLA missed by {_by(query)}",
                                     _groups(report, lambda r: r.get("missed"), "due"), query.by or "group",
                                     "hand-offs missed"))
    hours = [(name, value) for name, value in
             _groups(report, lambda r: r.get("median_hours_to_first_action"), "due") if value is not None]
    view.figures.append(count_figure("first-action-chart", f"Median hours to the first action by {_by(query)}",
                                     hours, query.by or "group", "hours"))
    return view


def draw_revenue(report: Report, query: ReportQuery, overall: Overall) -> PageView:
    currencies: Counter[str] = Counter()
    for row in report.rows:
        currencies.update(row.get("amount") or {})
    currency = currencies.most_common(1)[0][0] if currencies else None
    view = PageView(show_column=lambda column: not column.startswith("first_content."))
    view.figures.append(count_figure("won-chart", f"Deals won by {_by(query)}",
                                     _groups(report, lambda r: r.get("won_deals"), "won_deals"),
                                     query.by or "group", "deals won"))
    if currency is not None:
        view.figures.append(count_figure("amount-chart", f"Amount won in {currency} by {_by(query)}",
                                         _groups(report, lambda r: (r.get("amount") or {}).get(currency, 0),
                                                 "won_deals"), query.by or "group", f"{currency} won"))
    view.figures.append(share_figure("win-rate-chart", f"Win rate by {_by(query)} (won of the deals closed)",
                                     _groups(report, lambda r: r.get("win_rate"), "won_deals"),
                                     query.by or "group"))
    contents: Counter[str] = Counter()
    for row in report.rows:
        for name, entry in (row.get("first_content") or {}).items():
            contents[name] += entry.get("won_deals", 0)
    view.figures.append(count_figure("first-content-chart", "Deals won by the lead's first content",
                                     contents.most_common(MOST_BARS), "first content", "deals won"))
    return view


def draw_recycle(report: Report, query: ReportQuery, overall: Overall) -> PageView:
    reasons: Counter[str] = Counter()
    for row in report.rows:
        reasons[str(row.get("reason"))] += row.get("recycled") or 0
    view = PageView()
    view.figures.append(count_figure("recycled-chart", "Leads recycled by reason", reasons.most_common(MOST_BARS),
                                     "reason", "leads recycled"))
    grouped = query.by is not None
    top = sorted(report.rows, key=lambda row: -(row.get("recycled") or 0))[:MOST_BARS]
    view.figures.append(share_figure("back-chart", "Back to MQL after the recycle",
                                     [(f"{r['group']} · {r.get('reason')}" if grouped else str(r.get("reason")),
                                       r.get("back_to_mql_rate")) for r in top], "reason"))
    return view
