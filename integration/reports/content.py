"""``content``: which calls to action and passive content bring good leads: per asset, form and
campaign named by the events of the window.

Per group, type (``asset``, ``form``, ``campaign``) and name: ``leads_touched`` (leads with an
event naming it in the window), ``first_touches`` (leads whose first touch ever was on it),
``conversions`` (form submissions, downloads, trials, event attendances and contact requests
naming it), ``converters`` (the people behind them) split into ``new_converters`` and
``repeat_converters`` (people who had already converted on another call to action: the
dilution), ``repeat_share``, and of the leads that touched it before their first MQL
(``touched_before_mql``), the shares that became an MQL, were accepted by sales and were won.
"""

from __future__ import annotations

from functools import reduce
from typing import Any

from sqlalchemy import Integer, and_, case, func, literal, select, true, union_all
from sqlalchemy.orm import Session

from integration.reports.report import Report
from integration.reports.sql import count_if, in_window, lead_groups, prepare, share
from integration.reports.window import ReportQuery
from integration.store.models import Event, LeadContentSummary, LeadSummary
from integration.store.summaries import CALLS_TO_ACTION as TYPES
from integration.store.summaries import CONVERSIONS, latest

COLUMNS = ["group", "type", "name", "leads_touched", "first_touches", "conversions", "converters", "new_converters",
           "repeat_converters", "repeat_share", "touched_before_mql", "mql_rate", "accepted_rate", "won_rate"]

def build(session: Session, query: ReportQuery) -> Report:
    """Return the content report of the window, one row per group and call to action."""
    prepare(session)
    joined = _joined(session, query).subquery("content_leads")
    before = joined.c.first_mql.is_(None) | (joined.c.first_at < joined.c.first_mql)
    converted = joined.c.conversions > 0
    counted = session.execute(
        select(joined.c.grp, joined.c.type, joined.c.name, func.count().label("leads"),
               count_if(joined.c.first_touch == joined.c.first_at).label("first_touches"),
               func.sum(joined.c.conversions).label("conversions"),
               count_if(converted).label("converters"),
               count_if(converted & (joined.c.earliest_conversion < joined.c.first_conversion)).label("repeat"),
               count_if(before).label("before"),
               count_if(before & joined.c.first_mql.is_not(None)).label("mql"),
               count_if(before & joined.c.accepted_at.is_not(None)).label("accepted"),
               count_if(before & joined.c.won_at.is_not(None)).label("won"))
        .group_by(joined.c.grp, joined.c.type, joined.c.name)
        .order_by(joined.c.grp, joined.c.type, func.count().desc(), joined.c.name)).mappings().all()
    rows = []
    for row in counted:
        converters, repeat = int(row["converters"]), int(row["repeat"])
        rows.append({"group": row["grp"], "type": row["type"], "name": row["name"], "leads_touched": row["leads"],
                     "first_touches": int(row["first_touches"]), "conversions": int(row["conversions"] or 0),
                     "converters": converters, "new_converters": converters - repeat, "repeat_converters": repeat,
                     "repeat_share": share(repeat, converters), "touched_before_mql": int(row["before"]),
                     "mql_rate": share(row["mql"], row["before"]),
                     "accepted_rate": share(row["accepted"], row["before"]),
                     "won_rate": share(row["won"], row["before"])})
    return Report("content", rows, list(COLUMNS))

def _joined(session: Session, query: ReportQuery) -> Any:
    """Per lead and call to action touched in the window: the lead's group, its first touch of it
    in the window and its first touch ever, its conversions on it in the window, its first
    conversion on it and on any call to action (ever), and the lead's first MQL, acceptance and win."""
    per_lead = _per_lead(query)
    summary = LeadSummary.__table__.c
    accepted_at = reduce(latest, (summary[f"{stage}_last_at"] for stage in ("accepted", "sql", "won", "lost")))
    groups = lead_groups(session, query.by).subquery("groups")
    return (select(groups.c.grp, per_lead.c.type, per_lead.c.name, per_lead.c.first_at, per_lead.c.first_conversion,
                   per_lead.c.conversions, summary.first_conversion_at.label("earliest_conversion"),
                   summary.first_touch_at.label("first_touch"), summary.mql_first_at.label("first_mql"),
                   accepted_at.label("accepted_at"), summary.won_last_at.label("won_at"))
            .select_from(per_lead).join(groups, groups.c.lead_id == per_lead.c.lead_id)
            .outerjoin(LeadSummary, LeadSummary.lead_id == per_lead.c.lead_id))


def _per_lead(query: ReportQuery) -> Any:
    """Per lead and call to action touched in the window: ``type``, ``name``, ``lead_id``, the
    first touch in the window (``first_at``), the first conversion ever (``first_conversion``)
    and the conversions in the window. A lead whose touches of it all fall inside the window is
    read from the content summaries alone; only those whose touches straddle a side of the
    window are counted again from their events."""
    summary = LeadContentSummary
    inside = and_(true(), *in_window(summary.first_at, query), *_before_until(summary.last_at, query))
    whole = select(summary.kind.label("type"), summary.name.label("name"), summary.lead_id.label("lead_id"),
                   summary.first_at.label("first_at"), summary.first_conversion_at.label("first_conversion"),
                   summary.conversions.label("conversions")).where(inside)
    if query.since is None and query.until is None:
        return whole.subquery("per_lead")
    straddling = (select(summary.lead_id, summary.kind, summary.name, summary.first_conversion_at)
                  .where(~inside, *_after_since(summary.last_at, query), *_before_until(summary.first_at, query))
                  .subquery("straddling"))
    named = {kind: Event.properties[kind].as_string() for kind in TYPES}
    tagged = (select(Event.lead_id, Event.occurred_at.label("at"),
                     case((Event.kind.in_(CONVERSIONS), 1), else_=0).label("converts"),
                     *(value.label(kind) for kind, value in named.items()))
              .where(Event.lead_id.in_(select(straddling.c.lead_id)), *in_window(Event.occurred_at, query))
              .cte("tagged"))
    touches = union_all(*(select(tagged.c.lead_id, tagged.c.at, tagged.c.converts, literal(kind).label("type"),
                                 tagged.c[kind].label("name")).where(tagged.c[kind].is_not(None)) for kind in TYPES)
                        ).subquery("touches")
    cut = (select(touches.c.type, touches.c.name, touches.c.lead_id, func.min(touches.c.at).label("first_at"),
                  func.min(straddling.c.first_conversion_at).label("first_conversion"),
                  func.sum(touches.c.converts).cast(Integer).label("conversions"))
           .join(straddling, and_(straddling.c.lead_id == touches.c.lead_id, straddling.c.kind == touches.c.type,
                                  straddling.c.name == touches.c.name))
           .group_by(touches.c.type, touches.c.name, touches.c.lead_id))
    return union_all(whole, cut).subquery("per_lead")


def _after_since(column: Any, query: ReportQuery) -> list[Any]:
    return [column >= literal(query.since, LeadContentSummary.first_at.type)] if query.since is not None else []


def _before_until(column: Any, query: ReportQuery) -> list[Any]:
    return [column < literal(query.until, LeadContentSummary.first_at.type)] if query.until is not None else []
