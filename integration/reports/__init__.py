"""What the stored history says: the reports (funnel, content, hand-off, SLA, recycle, revenue)
and ``leadloop rules compare``.

``REPORTS`` maps each report kind to its ``build(session, query) -> Report``; the CLI
(``leadloop report KIND``) and the dashboard look kinds up there. Every report reads the store in
SQL (the same on SQLite and PostgreSQL) over the leads first touched in the query's window
(``integration.reports.window``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from integration.reports import content, funnel, handoff, recycle, revenue, sla
from integration.reports.report import Report
from integration.reports.window import DIMENSIONS, ReportQuery

#: Report kind -> its builder.
REPORTS: dict[str, Callable[[Session, ReportQuery], Report]] = {
    "funnel": funnel.build,
    "content": content.build,
    "handoff": handoff.build,
    "sla": sla.build,
    "recycle": recycle.build,
    "revenue": revenue.build,
}

__all__ = ["DIMENSIONS", "REPORTS", "Report", "ReportQuery"]
