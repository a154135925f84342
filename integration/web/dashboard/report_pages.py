"""The report pages: the overview (the funnel and the key figures), then one page per report of
``integration.reports`` (funnel, hand-off, content, SLA, revenue, recycle), each with its charts
(``report_views``), its table and the same table as CSV.

The figures are the reports' own. Every page takes the same filters as ``leadloop report``:
``since`` and ``until`` (the window; each report says what it selects by it) and ``by`` (the
dimension the rows are grouped by). A report computed for a window and grouping is kept in Redis
for ``CACHE_SECONDS`` and shown again from there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, g, render_template, request, url_for
from redis.exceptions import RedisError

from integration.reports import DIMENSIONS, REPORTS, Report, ReportQuery
from integration.web.dashboard import report_views as views
from integration.web.dashboard.common import Window, choice_param, csv_response, services, window_params

#: How long a report's figures are reused: a page over a million leads costs seconds of SQL the
#: first time; the same window and grouping is then served from Redis for this long.
CACHE_SECONDS = 300
CACHE_PREFIX = "leadloop:dashboard:report:"


@dataclass(frozen=True)
class Page:
    """A report page: its title, report kind, default grouping, and what it draws."""

    title: str
    kind: str
    intro: str
    default_by: str | None
    draw: Callable[[Report, ReportQuery, views.Overall], views.PageView]


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


PAGES: dict[str, Page] = {
    "funnel": Page("Funnel", "funnel", "Leads entering each stage, conversion between stages and the time it took. "
                   "The dates select the leads by their first touch; what happened to them counts to date.",
                   "cohort", views.draw_funnel),
    "handoff": Page("Hand-off", "handoff", "How sales answered the hand-offs (MQLs): acceptance, rejection reasons, "
                    "time to accept, by the band at hand-off and by the scoring rules behind the MQL. The dates "
                    "select the hand-offs; their outcome counts to date.", "band", views.draw_handoff),
    "content": Page("Content", "content", "Which calls to action and content bring good leads: leads touched, first "
                    "touches, new and repeat converters, and the MQL, accepted and won rates of the leads that "
                    "touched it before their MQL. The dates select the events.", None, views.draw_content),
    "sla": Page("SLA", "sla", "Whether hand-offs were acted on in time, per rep (owner) or team: due, met, missed, "
                "escalated, and the hours to the first action. The dates select the hand-offs.", "owner",
                views.draw_sla),
    "revenue": Page("Revenue", "revenue", "Deals won and lost, the amount won and the time to win, by the lead's band "
                    "at hand-off, source or first content. The dates select the deals by their close.", "band",
                    views.draw_revenue),
    "recycle": Page("Recycle", "recycle", "Leads sent back to marketing, by reason, and how many came back to MQL "
                    "and were won. The dates select the recycles.", None, views.draw_recycle),
}


def nav_links() -> list[tuple[str, str]]:
    """The navigation: (endpoint, label) of the overview, each report page this version has, the leads."""
    pages = [(f"dashboard.{slug}", page.title) for slug, page in PAGES.items() if page.kind in REPORTS]
    return [("dashboard.overview", "Overview"), *pages, ("dashboard.leads", "Leads")]


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/", "overview", overview)
    for slug in PAGES:
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
    view = views.overview_view(build_report("funnel", query))
    return render_template("dashboard/overview.html", title="Overview", window=window, view=view,
                           cache_minutes=CACHE_SECONDS // 60)


def report_page(slug: str) -> Any:
    page = _page(slug)
    window = window_params()
    query = _query(window, _by_param(page))
    report = build_report(page.kind, query)
    view = page.draw(report, query, lambda: report if query.by is None else
                     build_report(page.kind, ReportQuery(query.since, query.until, None)))
    shown = [index for index, column in enumerate(report.columns) if view.show_column(column)]
    rows = [[row[index] for index in shown] for row in report.table_rows()]
    csv_args = {k: v for k, v in request.args.items() if k in ("since", "until", "by")}
    return render_template("dashboard/report.html", title=page.title, page=page, slug=slug, window=window,
                           by=query.by, dimensions=DIMENSIONS, view=view, rows=rows,
                           columns=[report.columns[index] for index in shown],
                           all_columns=len(shown) == len(report.columns),
                           csv_url=url_for(f"dashboard.{slug}_csv", **csv_args), cache_minutes=CACHE_SECONDS // 60)


def report_csv(slug: str) -> Any:
    page = _page(slug)
    query = _query(window_params(), _by_param(page))
    report = build_report(page.kind, query)
    return csv_response(report.columns, report.table_rows(), f"{slug}.csv")
