"""``funnel``: leads entering each stage, conversion between stages and the time it took.

The window selects the leads by their first touch (a cohort); their whole path to date counts.
Per group: ``entered`` counts the leads that entered each stage (every lead enters ``new`` at its
first touch); ``converted["from->to"]`` is the share of the leads that entered ``from`` which
later reached ``to`` (at or after their first entry into ``from``, by any path: a lead may skip
``nurture`` or ``accepted``); ``median_days`` and ``p90_days`` are the times from that first
entry into ``from`` to the first entry into ``to`` after it. Stage times are the transitions'
business times (``Transition.at``); SLA reminders (a transition to the same stage) are no entry.

In SQL, one row per lead from the lead summaries (``integration.store.summaries``: the first touch,
and per stage the first and last entry and how many), a look at the transitions only for the few
leads that entered a stage three times or more.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from integration.reports.report import Report
from integration.reports.sql import (
    cohort_leads,
    days,
    days_between,
    dialect,
    percentile,
    percentiles_sql,
    prepare,
    share,
)
from integration.reports.window import ReportQuery
from integration.store.models import Lead, LeadSummary, Transition
from scoring.lifecycle_schemas import STAGES

#: The stage pairs reported: the main path step by step, cumulative from new (and mql to won),
#: then the ways out and back (recycled, lost, disqualified).
STEPS = (("new", "nurture"), ("nurture", "mql"), ("mql", "accepted"), ("accepted", "sql"), ("sql", "won"))
CUMULATIVE = (("new", "mql"), ("new", "accepted"), ("new", "sql"), ("new", "won"), ("mql", "won"))
DETOURS = (("mql", "recycled"), ("recycled", "mql"), ("sql", "lost"), ("new", "disqualified"))
PAIRS = STEPS + CUMULATIVE + DETOURS
#: The percentiles of the time between stages.
FRACTIONS = (0.5, 0.9)


def pair_name(pair: tuple[str, str]) -> str:
    """``"mql->accepted"``."""
    return f"{pair[0]}->{pair[1]}"


def build(session: Session, query: ReportQuery) -> Report:
    """Return the funnel of the leads first touched in the window, one row per group."""
    prepare(session)
    journeys = _journeys(session, query).subquery("journeys")
    entered = [func.count(journeys.c[f"first_{stage}"]).label(f"entered_{stage}") for stage in STAGES]
    reached = [func.count(journeys.c[f"reach_{index}"]).label(f"reached_{index}") for index in range(len(PAIRS))]
    postgres = dialect(session) == "postgresql"
    spreads = [percentiles_sql(journeys.c[f"days_{index}"], FRACTIONS).label(f"spread_{index}")
               for index in range(len(PAIRS))] if postgres else []
    counted = session.execute(select(journeys.c.grp, *entered, *reached, *spreads)
                              .group_by(journeys.c.grp).order_by(journeys.c.grp)).mappings().all()
    spread_of = {row["grp"]: [row[f"spread_{index}"] for index in range(len(PAIRS))] for row in counted} \
        if postgres else _spreads_in_python(session, journeys)
    rows = [_row(row, spread_of.get(row["grp"])) for row in counted]
    columns = ["group", *(f"entered.{stage}" for stage in STAGES),
               *(f"{what}.{pair_name(pair)}" for what in ("converted", "median_days", "p90_days") for pair in PAIRS)]
    return Report("funnel", rows, columns)


def _journeys(session: Session, query: ReportQuery) -> Any:
    """Per lead of the window: its group, first entry into each stage, and per pair the first
    entry into ``to`` at or after the first entry into ``from`` (with the days between)."""
    names = {f"{what}_{stage}": f"{stage}_{column}" for stage in STAGES[1:]
             for what, column in (("first", "first_at"), ("last", "last_at"), ("times", "entries"))}
    cohort = cohort_leads(session, query, names).subquery("cohort")
    summary = LeadSummary.__table__.c

    def first(stage: str, source: Any = cohort.c) -> Any:
        return source["first_at"] if stage == "new" else source[f"first_{stage}"]

    # The first entry into `to` at or after `from`'s is the first entry into `to` when that came
    # later, else the last one when there were two; only leads that entered a stage three times or
    # more need a second look at their transitions (few: each recycle is one more entry).
    again = or_(*(summary[f"{stage}_entries"] > 2 for stage in STAGES[1:]))
    their = {"first_at": func.coalesce(summary.first_touch_at, Lead.created_at),
             **{f"first_{stage}": summary[f"{stage}_first_at"] for stage in STAGES[1:]}}
    rare = (select(Transition.lead_id, *(func.min(case(((Transition.to_stage == to)
                                                         & (Transition.at >= first(start, their)), Transition.at)))
                                         .label(f"reach_{index}") for index, (start, to) in enumerate(PAIRS)))
            .join(LeadSummary, LeadSummary.lead_id == Transition.lead_id).join(Lead, Lead.id == Transition.lead_id)
            .where(Transition.to_stage != Transition.from_stage, again)
            .group_by(Transition.lead_id).subquery("rare_reach"))

    def reach(index: int, start: str, to: str) -> Any:
        since, first_to, last_to = first(start), cohort.c[f"first_{to}"], cohort.c[f"last_{to}"]
        return case((first_to >= since, first_to),
                    (and_(last_to >= since, cohort.c[f"times_{to}"] == 2), last_to),
                    (last_to >= since, rare.c[f"reach_{index}"]))

    reached = [reach(index, start, to) for index, (start, to) in enumerate(PAIRS)]
    spans = [cast(days_between(session, reached[index], first(start)), Float).label(f"days_{index}")
             for index, (start, _) in enumerate(PAIRS)]
    return (select(cohort.c.grp, *(first(stage).label(f"first_{stage}") for stage in STAGES),
                   *(value.label(f"reach_{index}") for index, value in enumerate(reached)), *spans)
            .select_from(cohort).outerjoin(rare, rare.c.lead_id == cohort.c.lead_id))


def _spreads_in_python(session: Session, journeys: Any) -> dict[str, list[list[float | None]]]:
    """SQLite has no percentile_cont: fetch the day counts (one column per pair) and compute them."""
    values: dict[str, list[list[float]]] = {}
    spans = [journeys.c[f"days_{index}"] for index in range(len(PAIRS))]
    for grp, *found in session.execute(select(journeys.c.grp, *spans)):
        per_pair = values.setdefault(grp, [[] for _ in PAIRS])
        for index, value in enumerate(found):
            if value is not None:
                per_pair[index].append(float(value))
    return {grp: [[percentile(pair, fraction) for fraction in FRACTIONS] for pair in per_pair]
            for grp, per_pair in values.items()}


def _row(row: Any, spreads: list[Any] | None) -> dict[str, Any]:
    spreads = spreads or [None] * len(PAIRS)
    entered = {stage: int(row[f"entered_{stage}"]) for stage in STAGES}
    converted, median, p90 = {}, {}, {}
    for index, pair in enumerate(PAIRS):
        name, spread = pair_name(pair), spreads[index] or [None, None]
        converted[name] = share(row[f"reached_{index}"], entered[pair[0]])
        median[name], p90[name] = days(spread[0]), days(spread[1])
    return {"group": row["grp"], "entered": entered, "converted": converted, "median_days": median, "p90_days": p90}
