"""The hand-offs and how each ended, in SQL: shared by the ``handoff`` and ``sla`` reports.

A hand-off is a lead's entry into ``mql`` (a transition from another stage); it ends with the
lead's next move out of ``mql``: ``accepted`` when sales took it (to accepted, sql, won or lost),
``rejected`` when sales sent it back (a disposition to recycled, nurture or disqualified, with its
reason), ``no_response`` when the SLA recycled it, ``other`` for any other way out (a score that
disqualified it), and ``open`` while the lead is still an MQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.orm import Session, aliased

from integration.reports.sql import in_window
from integration.reports.window import ReportQuery
from integration.store.models import Transition

#: Where a hand-off goes when sales takes it.
TAKEN = ("accepted", "sql", "won", "lost")


def hand_offs(session: Session, query: ReportQuery) -> Any:
    """One row per hand-off in the window: ``handoff_id``, ``lead_id``, ``at``, and its end:
    ``outcome``, ``ended_at``, ``reason`` (of a rejection or recycle), ``exit_cause``."""
    entry, leaving = aliased(Transition, name="entry"), aliased(Transition, name="leaving")
    entries = (select(entry.id.label("handoff_id"), entry.lead_id, entry.at)
               .where(entry.to_stage == "mql", entry.from_stage != "mql", *in_window(entry.at, query))
               .cte("handoff_entries"))
    later = or_(leaving.at > entries.c.at, and_(leaving.at == entries.c.at, leaving.id > entries.c.handoff_id))
    ranked = (select(entries.c.handoff_id, leaving.to_stage, leaving.cause, leaving.at.label("ended_at"),
                     leaving.detail["reason"].as_string().label("reason"),
                     func.row_number().over(partition_by=entries.c.handoff_id,
                                            order_by=(leaving.at, leaving.id)).label("nth"))
              .join(leaving, and_(leaving.lead_id == entries.c.lead_id, leaving.from_stage == "mql",
                                  leaving.to_stage != "mql", later))
              .subquery("handoff_exits"))
    exits = select(ranked).where(ranked.c.nth == 1).subquery("first_exits")
    outcome = case((exits.c.handoff_id.is_(None), literal("open")),
                   (exits.c.to_stage.in_(TAKEN), literal("accepted")),
                   (exits.c.cause == "sla", literal("no_response")),
                   (exits.c.cause == "disposition", literal("rejected")),
                   else_=literal("other"))
    return (select(entries.c.handoff_id, entries.c.lead_id, entries.c.at, outcome.label("outcome"),
                   exits.c.ended_at, exits.c.reason, exits.c.cause.label("exit_cause"))
            .select_from(entries).outerjoin(exits, exits.c.handoff_id == entries.c.handoff_id))


def stage_marks(*stages: str) -> Any:
    """Per lead, the last time it entered any of ``stages`` (``lead_id``, ``last_at``)."""
    return (select(Transition.lead_id, func.max(Transition.at).label("last_at"))
            .where(Transition.to_stage.in_(stages), Transition.to_stage != Transition.from_stage)
            .group_by(Transition.lead_id))
