"""``sla``: were the hand-offs of the window acted on in time, per rep and team (``--by owner``,
``--by team``)?

A hand-off's SLA is missed when an SLA check found no action (a reminder, a reassignment or the
recycle it records); escalated when a miss reassigned or recycled the lead. The first action is
the rep's first call, e-mail, meeting or task logged in the CRM after the hand-off (not one the
lead sent), or sales' answer (accepted, sql, won, lost or a rejection), whichever came first.
Per group: ``handed_off``, ``due`` (met + missed), ``met`` (acted before any miss), ``missed``,
``escalated``, ``pending`` (no action and no miss yet), ``met_rate`` (met / due), and the median
and p90 hours from the hand-off to the first action.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from integration.reports.handoffs import hand_offs
from integration.reports.report import Report
from integration.reports.sql import count_if, days_between, lead_groups, materialized, prepare, share, spreads_by_group
from integration.reports.window import ReportQuery
from integration.store.models import Event, Lead, Transition

#: The columns of a checked hand-off (``_checked``).
CHECKED = {"grp": String(), "first_miss": Lead.created_at.type, "escalated": Integer(),
           "first_action": Lead.created_at.type, "hours_to_first_action": Float()}
COLUMNS = ["group", "handed_off", "due", "met", "missed", "escalated", "pending", "met_rate",
           "median_hours_to_first_action", "p90_hours_to_first_action"]


def build(session: Session, query: ReportQuery) -> Report:
    """Return the SLA report of the hand-offs in the window, one row per group."""
    prepare(session)
    with materialized(session, "sla", _checked(session, query), CHECKED) as checked:
        return Report("sla", _rows(session, checked), list(COLUMNS))


def _rows(session: Session, checked: Any) -> list[dict[str, Any]]:
    """The report's rows from the checked hand-offs."""
    met = checked.c.first_action.is_not(None) & (checked.c.first_miss.is_(None)
                                                 | (checked.c.first_action < checked.c.first_miss))
    missed = checked.c.first_miss.is_not(None) & ~met
    counted = session.execute(
        select(checked.c.grp, func.count().label("handed_off"), count_if(met).label("met"),
               count_if(missed).label("missed"), count_if(checked.c.escalated > 0).label("escalated"))
        .group_by(checked.c.grp).order_by(checked.c.grp)).mappings().all()
    spreads = spreads_by_group(session, checked, ["grp"], "hours_to_first_action")
    rows = []
    for row in counted:
        due = int(row["met"]) + int(row["missed"])
        spread = spreads.get((row["grp"],), [None, None])
        rows.append({"group": row["grp"], "handed_off": row["handed_off"], "due": due, "met": int(row["met"]),
                     "missed": int(row["missed"]), "escalated": int(row["escalated"]),
                     "pending": row["handed_off"] - due, "met_rate": share(row["met"], due),
                     "median_hours_to_first_action": _hours(spread[0]),
                     "p90_hours_to_first_action": _hours(spread[1])})
    return rows


def _hours(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _checked(session: Session, query: ReportQuery) -> Any:
    """Each hand-off with its group, its first SLA miss, whether it escalated, its first action."""
    handoffs = hand_offs(session, query).cte("sla_handoffs")
    groups = lead_groups(session, query.by).subquery("groups")
    until_end = or_(handoffs.c.ended_at.is_(None), Transition.at <= handoffs.c.ended_at)
    escalation = or_(Transition.to_stage != Transition.from_stage,
                     Transition.detail["action"].as_string() == "reassign")
    misses = (select(handoffs.c.handoff_id, func.min(Transition.at).label("first_miss"),
                     func.max(case((escalation, 1), else_=0)).label("escalated"))
              .join(Transition, and_(Transition.lead_id == handoffs.c.lead_id, Transition.cause == "sla",
                                     Transition.at >= handoffs.c.at, until_end))
              .group_by(handoffs.c.handoff_id).subquery("misses"))
    direction = Event.properties["direction"].as_string()
    activities = (select(handoffs.c.handoff_id, func.min(Event.occurred_at).label("first_activity"))
                  .join(Event, and_(Event.lead_id == handoffs.c.lead_id, Event.kind == "rep_activity",
                                    Event.occurred_at >= handoffs.c.at,
                                    or_(handoffs.c.ended_at.is_(None), Event.occurred_at <= handoffs.c.ended_at),
                                    or_(direction.is_(None), direction != "inbound")))
                  .group_by(handoffs.c.handoff_id).subquery("activities"))
    answered = case((handoffs.c.outcome.in_(("accepted", "rejected")), handoffs.c.ended_at))
    activity = activities.c.first_activity
    first_action = case((activity.is_(None), answered), (answered.is_(None), activity),
                        (activity < answered, activity), else_=answered)
    return (select(groups.c.grp, misses.c.first_miss, func.coalesce(misses.c.escalated, 0).label("escalated"),
                   first_action.label("first_action"),
                   cast(days_between(session, first_action, handoffs.c.at) * 24, Float).label("hours_to_first_action"))
            .select_from(handoffs).join(groups, groups.c.lead_id == handoffs.c.lead_id)
            .outerjoin(misses, misses.c.handoff_id == handoffs.c.handoff_id)
            .outerjoin(activities, activities.c.handoff_id == handoffs.c.handoff_id))
