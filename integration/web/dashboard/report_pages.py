"""The report pages: the overview (the funnel and the key figures), then one page per report of
``integration.reports`` (funnel, hand-off, content, SLA, revenue), each with its charts, its
table and the same table as CSV.

The figures are the reports' own: this module only picks what to draw. Every page takes the
same filters as ``leadloop report``: ``since`` and ``until`` (leads first touched in that
window) and ``by`` (the dimension the rows are grouped by).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, g, render_template, request, url_for
from markupsafe import Markup
from redis.exceptions import RedisError

from integration.reports import DIMENSIONS, REPORTS, Report, ReportQuery
from integration.web.dashboard import charts
from integration.web.dashboard.common import Window, choice_param, csv_response, days, services, share, window_params

#: How long a report's figures are reused: a page over a million leads costs seconds of SQL the
#: first time; the same window and grouping is then served from Redis for this long.
CACHE_SECONDS = 300
CACHE_PREFIX = "leadloop:dashboard:report:"
#: The funnel's main path, drawn as the funnel chart.
MAIN_PATH = ("new", "nurture", "mql", "accepted", "sql", "won")
#: The stage steps whose times the time-in-stage chart shows.
TIME_STEPS = ("new->nurture", "nurture->mql", "new->mql", "mql->accepted", "accepted->sql", "sql->won", "mql->won")


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


@dataclass(frozen=True)
class Page:
    """A report page: its title, report kind, default grouping, and what it draws."""

    title: str
    kind: str
    intro: str
    default_by: str | None
    draw: Callable[[Report, ReportQuery], PageView]


def _query(window: Window, by: str | None) -> ReportQuery:
    try:
        return ReportQuery(since=window.since_at, until=window.until_at, by=by)
    except ValueError as exc:
        abort(400, description=str(exc))


def build_report(kind: str, query: ReportQuery) -> Report:
    """The report ``kind`` for ``query``: from the cache when it was computed in the last
    ``CACHE_SECONDS``, otherwise computed now and cached (Redis down: computed every time)."""
    svc = services()
    key = CACHE_PREFIX + json.dumps([kind, _iso(query.since), _iso(query.until), query.by])
    try:
        cached = svc.redis.get(key)
    except RedisError:
        cached = None
    if cached is not None:
        data = json.loads(cached)
        g.setdefault("computed_at", datetime.fromisoformat(data["at"]))
        return Report(kind, data["rows"], data["columns"])
    with svc.sessions() as session:
        report = REPORTS[kind](session, query)
    now = svc.now()
    g.setdefault("computed_at", now)
    try:
        svc.redis.set(key, json.dumps({"rows": report.rows, "columns": report.columns, "at": now.isoformat()},
                                      default=str), ex=CACHE_SECONDS)
    except RedisError:
        pass
    return report


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


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
    bars = [charts.Bar(name, float(value or 0), f"{value or 0:,}") for name, value in rows]
    return Figure(heading, charts.horizontal_bars(chart_id, heading, bars), [label, what],
                  [[bar.label, bar.text] for bar in bars])


def _all_row(report: Report) -> dict[str, Any]:
    return report.rows[0] if report.rows else {}


def draw_funnel(report: Report, query: ReportQuery) -> PageView:
    step = choice_param("step", [f"{a}->{b}" for a, b in zip(MAIN_PATH, MAIN_PATH[1:], strict=False)]
                        + ["new->mql", "new->won", "mql->won"]) or "new->mql"
    view = PageView(extra_filters=[("step", "Conversion shown by group",
                                    [f"{a}->{b}" for a, b in zip(MAIN_PATH, MAIN_PATH[1:], strict=False)]
                                    + ["new->mql", "new->won", "mql->won"], step)])
    overall = report if query.by is None else build_report("funnel", ReportQuery(query.since, query.until, None))
    row = _all_row(overall)
    view.figures.append(funnel_figure("funnel-chart", row, "Leads entering each stage"))
    view.figures.append(time_figure("time-chart", row, "Time between stages (days)"))
    if query.by is not None:
        groups = [(str(r["group"]), (r.get("converted") or {}).get(step)) for r in report.rows]
        view.figures.append(share_figure("conversion-chart", f"Conversion {step.replace('->', ' → ')} by {query.by}",
                                         groups, query.by))
    return view


def overview_view(report: Report) -> PageView:
    row = _all_row(report)
    entered, converted = row.get("entered") or {}, row.get("converted") or {}
    median = row.get("median_days") or {}
    view = PageView(key_figures=[
        ("Leads", f"{entered.get('new', 0):,}"), ("MQLs", f"{entered.get('mql', 0):,}"),
        ("Accepted by sales", f"{entered.get('accepted', 0):,}"), ("Won", f"{entered.get('won', 0):,}"),
        ("Lead → MQL", share(converted.get("new->mql"))), ("MQL → accepted", share(converted.get("mql->accepted"))),
        ("MQL → won", share(converted.get("mql->won"))),
        ("Median days MQL → accepted", days(median.get("mql->accepted"))),
    ])
    view.figures.append(funnel_figure("funnel-chart", row, "Leads entering each stage"))
    view.figures.append(time_figure("time-chart", row, "Time between stages (days)"))
    return view


PAGES: dict[str, Page] = {
    "funnel": Page("Funnel", "funnel", "Leads entering each stage, conversion between stages and the time it "
                   "took, by the dimension you choose.", "cohort", draw_funnel),
}


def nav_links() -> list[tuple[str, str]]:
    """The navigation: (endpoint, label) of the overview, each report page this version has, the leads."""
    pages = [(f"dashboard.{slug}", page.title) for slug, page in PAGES.items() if page.kind in REPORTS]
    return [("dashboard.overview", "Overview"), *pages, ("dashboard.leads", "Leads")]


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/", "overview", overview)
    for slug in ("funnel", "handoff", "content", "sla", "revenue"):
        bp.add_url_rule(f"/{slug}", slug, report_page, defaults={"slug": slug})
        bp.add_url_rule(f"/{slug}.csv", f"{slug}_csv", report_csv, defaults={"slug": slug})


def _page(slug: str) -> Page:
    page = PAGES.get(slug)
    if page is None or page.kind not in REPORTS:
        abort(404, description=f"the {slug} report is not part of this version")
    return page


def _by_param(page: Page) -> str | None:
    if "by" not in request.args:
        return page.default_by
    return choice_param("by", DIMENSIONS)


def overview() -> Any:
    window = window_params()
    query = _query(window, None)
    view = overview_view(build_report("funnel", query))
    return render_template("dashboard/overview.html", title="Overview", window=window, view=view,
                           cache_minutes=CACHE_SECONDS // 60)


def report_page(slug: str) -> Any:
    page = _page(slug)
    window = window_params()
    query = _query(window, _by_param(page))
    report = build_report(page.kind, query)
    view = page.draw(report, query)
    csv_args = {k: v for k, v in request.args.items() if k in ("since", "until", "by")}
    return render_template("dashboard/report.html", title=page.title, page=page, slug=slug, window=window,
                           by=query.by, dimensions=DIMENSIONS, view=view, columns=report.columns,
                           rows=report.table_rows(), csv_url=url_for(f"dashboard.{slug}_csv", **csv_args),
                           cache_minutes=CACHE_SECONDS // 60)


def report_csv(slug: str) -> Any:
    page = _page(slug)
    query = _query(window_params(), _by_param(page))
    report = build_report(page.kind, query)
    return csv_response(report.columns, report.table_rows(), f"{slug}.csv")
