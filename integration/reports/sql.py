"""SQL shared by the reports (SQLAlchemy Core, the same on SQLite and PostgreSQL).

``cohort_leads`` is every report's starting set: one row per live lead first touched in the
window, with its group. Times between two stamps are in days (``days_between``); percentiles are
computed by PostgreSQL (``percentile_cont``) or, on SQLite, over the fetched values with the same
linear interpolation (``percentile``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    MetaData,
    Select,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from integration.reports.window import ALL, NONE, ReportQuery
from integration.store.models import Event, Lead, LeadSummary
from integration.store.summaries import refresh

#: Rounding of the shares (0.1234) and of the day counts (1.25) in the reports' JSON.
SHARE_DIGITS, DAY_DIGITS = 4, 2


#: PostgreSQL settings for the report queries, for the length of the caller's transaction: JIT
#: compiling the plans costs seconds and saves none on these scans; hash joins and sorts of
#: a million rows fit in memory instead of spilling to disk; and index reads are costed as on
#: SSD or cached storage (PostgreSQL's default assumes spinning disks), so a lead's first touch
#: is read from ``ix_events_lead_occurred`` alone rather than from the whole events table.
REPORT_SETTINGS = {"jit": "off", "work_mem": "'128MB'", "random_page_cost": "1.1"}


def prepare(session: Session) -> None:
    """Bring the report summaries up to date (``integration.store.summaries.refresh``: only the
    rows added since the last refresh; it commits), then tune the session's new transaction for
    reports (PostgreSQL; nothing on SQLite)."""
    refresh(session)
    if dialect(session) == "postgresql":
        for name, value in REPORT_SETTINGS.items():
            session.execute(text(f"SET LOCAL {name} = {value}"))


def dialect(session: Session) -> str:
    """``postgresql`` or ``sqlite``."""
    return session.get_bind().dialect.name


def days_between(session: Session, later: Any, earlier: Any) -> ColumnElement[float]:
    """The time from ``earlier`` to ``later`` in days (a float)."""
    if dialect(session) == "postgresql":
        return func.extract("epoch", later - earlier) / 86400.0
    return func.julianday(later) - func.julianday(earlier)


def month_of(session: Session, moment: Any) -> ColumnElement[str]:
    """The UTC month of ``moment`` as ``2026-03``."""
    if dialect(session) == "postgresql":
        return func.to_char(func.timezone("UTC", moment), "YYYY-MM")
    return func.strftime("%Y-%m", moment)


def first_touches() -> Select:
    """Per lead, the business time of its earliest event (``lead_id``, ``first_at``), from the
    summaries (current after ``prepare``)."""
    return (select(LeadSummary.lead_id.label("lead_id"), LeadSummary.first_touch_at.label("first_at"))
            .where(LeadSummary.first_touch_at.is_not(None)))


def first_campaigns() -> Select:
    """Per lead, the campaign of its earliest event that names one (``lead_id``, ``campaign``)."""
    campaign = Event.properties["campaign"].as_string()
    ranked = (select(Event.lead_id.label("lead_id"), campaign.label("campaign"),
                     func.row_number().over(partition_by=Event.lead_id,
                                            order_by=(Event.occurred_at, Event.id)).label("nth"))
              .where(Event.lead_id.is_not(None), campaign.is_not(None)).subquery("ranked_campaigns"))
    return select(ranked.c.lead_id, ranked.c.campaign).where(ranked.c.nth == 1)


def lead_groups(session: Session, by: str | None, *, with_first_touch: bool = False,
                summary_columns: dict[str, str] | None = None) -> Select:
    """Every live lead (not merged away or deleted) with its group: columns ``lead_id`` and ``grp``,
    and ``first_at`` (its first touch) when asked for or needed by ``by`` (``cohort``), and
    ``summary_columns`` (label: column of ``lead_summary``) when given."""
    stmt = select(Lead.id.label("lead_id")).where(Lead.merged_into_id.is_(None), Lead.deleted_at.is_(None))
    first_at: Any = None
    if with_first_touch or by == "cohort" or summary_columns:
        stmt = stmt.outerjoin(LeadSummary, LeadSummary.lead_id == Lead.id)
        first_at = func.coalesce(LeadSummary.first_touch_at, Lead.created_at)
        stmt = stmt.add_columns(first_at.label("first_at"),
                                *(LeadSummary.__table__.c[column].label(label)
                                  for label, column in (summary_columns or {}).items()))
    if by == "campaign":
        campaigns = first_campaigns().subquery("first_campaigns")
        stmt = stmt.outerjoin(campaigns, campaigns.c.lead_id == Lead.id)
        group: ColumnElement[Any] = campaigns.c.campaign
    else:
        group = group_of(session, by, first_at)
    return stmt.add_columns(func.coalesce(group, NONE).label("grp"))


def cohort_leads(session: Session, query: ReportQuery, summary_columns: dict[str, str] | None = None) -> Select:
    """The live leads first touched in the window, with their group: columns ``lead_id``,
    ``first_at`` (the first touch) and ``grp``, and ``summary_columns`` (label: column of
    ``lead_summary``) when given."""
    leads = lead_groups(session, query.by, with_first_touch=True, summary_columns=summary_columns).subquery(
        "grouped_leads")
    return select(leads.c.lead_id, leads.c.first_at, leads.c.grp, *(leads.c[label] for label in summary_columns or {})
                  ).where(*in_window(leads.c.first_at, query))


def in_window(column: Any, query: ReportQuery) -> list[ColumnElement[bool]]:
    """The conditions ``since <= column < until`` (none for an open side)."""
    conditions = []
    if query.since is not None:
        conditions.append(column >= literal(query.since, Lead.created_at.type))
    if query.until is not None:
        conditions.append(column < literal(query.until, Lead.created_at.type))
    return conditions


def group_of(session: Session, by: str | None, first_at: Any) -> ColumnElement[Any]:
    """The group expression of a lead for dimension ``by`` (all but ``campaign``)."""
    if by is None:
        return literal(ALL)
    if by == "cohort":
        return month_of(session, first_at)
    return {"source": Lead.fields["lead_source"].as_string(), "band": Lead.handoff_band,
            "owner": Lead.owner_id, "team": Lead.team}[by]


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows meet ``condition`` (a portable ``count(*) FILTER``)."""
    return func.sum(case((condition, 1), else_=0))


def both(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """All of ``conditions``."""
    return and_(*conditions)


def share(part: int | None, whole: int | None) -> float | None:
    """``part / whole`` rounded, None when ``whole`` is 0."""
    return round((part or 0) / whole, SHARE_DIGITS) if whole else None


def days(value: float | None) -> float | None:
    """A day count rounded for the report (None stays None)."""
    return None if value is None else round(float(value), DAY_DIGITS)


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` with linear interpolation (as ``percentile_cont``)."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def percentiles_sql(value: Any, fractions: tuple[float, ...]) -> ColumnElement[Any]:
    """PostgreSQL's ``percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY value)``: one sort for all."""
    wanted = ", ".join(repr(float(fraction)) for fraction in fractions)
    return func.percentile_cont(literal_column(f"ARRAY[{wanted}]")).within_group(value)


def spreads_by_group(session: Session, rows: Any, keys: list[str], value: str,
                     fractions: tuple[float, ...] = (0.5, 0.9)) -> dict[tuple[Any, ...], list[float | None]]:
    """Per group of ``rows`` (a subquery) by its ``keys`` columns, the ``fractions`` percentiles of
    its ``value`` column (NULLs left out): PostgreSQL computes them, SQLite's are computed here."""
    columns = [rows.c[key] for key in keys]
    measured = rows.c[value]
    if dialect(session) == "postgresql":
        found = session.execute(select(*columns, percentiles_sql(measured, fractions))
                                .where(measured.is_not(None)).group_by(*columns)).all()
        return {tuple(row[:-1]): list(row[-1]) for row in found}
    values: dict[tuple[Any, ...], list[float]] = {}
    for *key, number in session.execute(select(*columns, measured).where(measured.is_not(None))):
        values.setdefault(tuple(key), []).append(float(number))
    return {key: [percentile(found, fraction) for fraction in fractions] for key, found in values.items()}


_temporary_names = itertools.count(1)


@contextmanager
def materialized(session: Session, name: str, stmt: Select, columns: dict[str, TypeEngine[Any]]) -> Iterator[Table]:
    """Compute ``stmt`` once into a temporary table of ``columns`` (its selected columns, in order)
    and yield it, so that several aggregates read its rows instead of computing them again; the
    table is dropped after."""
    table = Table(f"report_{name}_{next(_temporary_names)}", MetaData(),
                  *(Column(column, kind) for column, kind in columns.items()), prefixes=["TEMPORARY"])
    connection = session.connection()
    table.create(connection)
    try:
        session.execute(insert(table).from_select(list(columns), stmt))
        if dialect(session) == "postgresql":
            session.execute(text(f"ANALYZE {table.name}"))
        yield table
    finally:
        table.drop(connection)
