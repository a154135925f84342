"""``recycle``: the leads sent back to marketing in the window, by reason, and how many came back
to MQL and were won.

A recycle is a lead's entry into ``recycled`` (sales' rejection, cause ``disposition``, or an SLA
that ran out, cause ``sla``). Per group and reason: ``recycled``, ``by_sales``, ``by_sla``,
``back_to_mql`` (the lead became an MQL again after the recycle, to date) with its rate and the
median days it took, and ``won`` (the lead was won after the recycle) with its rate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String, and_, case, cast, func, select
from sqlalchemy.orm import Session, aliased

from integration.reports.report import Report
from integration.reports.sql import (
    count_if,
    days,
    days_between,
    in_window,
    lead_groups,
    materialized,
    prepare,
    share,
    spreads_by_group,
)
from integration.reports.window import NONE, ReportQuery
from integration.store.models import Lead, Transition

#: The columns of a followed recycle (``_followed``).
FOLLOWED = {"grp": String(), "reason": String(), "cause": String(), "back_at": Lead.created_at.type,
            "won_at": Lead.created_at.type, "days_to_mql": Float()}
COLUMNS = ["group", "reason", "recycled", "by_sales", "by_sla", "back_to_mql", "back_to_mql_rate",
           "median_days_to_mql", "won", "won_rate"]


def build(session: Session, query: ReportQuery) -> Report:
    """Return the recycle report of the window, one row per group and reason."""
    prepare(session)
    with materialized(session, "recycles", _followed(session, query), FOLLOWED) as followed:
        return Report("recycle", _rows(session, followed), list(COLUMNS))


def _rows(session: Session, followed: Any) -> list[dict[str, Any]]:
    """The report's rows from the followed recycles."""
    counted = session.execute(
        select(followed.c.grp, followed.c.reason, func.count().label("recycled"),
               count_if(followed.c.cause == "disposition").label("by_sales"),
               count_if(followed.c.cause == "sla").label("by_sla"),
               count_if(followed.c.back_at.is_not(None)).label("back_to_mql"),
               count_if(followed.c.won_at.is_not(None)).label("won"))
        .group_by(followed.c.grp, followed.c.reason).order_by(followed.c.grp, func.count().desc(), followed.c.reason)
    ).mappings().all()
    spreads = spreads_by_group(session, followed, ["grp", "reason"], "days_to_mql")
    rows = []
    for row in counted:
        spread = spreads.get((row["grp"], row["reason"]), [None])
        rows.append({"group": row["grp"], "reason": row["reason"], "recycled": row["recycled"],
                     "by_sales": int(row["by_sales"]), "by_sla": int(row["by_sla"]),
                     "back_to_mql": int(row["back_to_mql"]),
                     "back_to_mql_rate": share(row["back_to_mql"], row["recycled"]),
                     "median_days_to_mql": days(spread[0]), "won": int(row["won"]),
                     "won_rate": share(row["won"], row["recycled"])})
    return rows


def _followed(session: Session, query: ReportQuery) -> Any:
    """Each recycle of the window with its group and reason, the lead's next MQL and a win after it."""
    recycle, later = aliased(Transition, name="recycle"), aliased(Transition, name="later")
    recycles = (select(recycle.id.label("recycle_id"), recycle.lead_id, recycle.at, recycle.cause,
                       func.coalesce(recycle.detail["reason"].as_string(), NONE).label("reason"))
                .where(recycle.to_stage == "recycled", recycle.from_stage != "recycled", *in_window(recycle.at, query))
                .cte("recycles"))
    after = and_(later.lead_id == recycles.c.lead_id, later.at >= recycles.c.at, later.from_stage != later.to_stage)
    outcomes = (select(recycles.c.recycle_id,
                       func.min(_when(later, "mql")).label("back_at"),
                       func.min(_when(later, "won")).label("won_at"))
                .join(later, after).group_by(recycles.c.recycle_id).subquery("after_recycle"))
    groups = lead_groups(session, query.by).subquery("groups")
    return (select(groups.c.grp, recycles.c.reason, recycles.c.cause, outcomes.c.back_at, outcomes.c.won_at,
                   cast(days_between(session, outcomes.c.back_at, recycles.c.at), Float).label("days_to_mql"))
            .select_from(recycles).join(groups, groups.c.lead_id == recycles.c.lead_id)
            .outerjoin(outcomes, outcomes.c.recycle_id == recycles.c.recycle_id))


def _when(transition: Any, stage: str) -> Any:
    """The transition's time where it enters ``stage``, else NULL."""
    return case((transition.to_stage == stage, transition.at))
