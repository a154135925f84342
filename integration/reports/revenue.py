"""``revenue``: the deals closed in the window, won and lost, with the amount won and the time to
win, by the group of the deal's lead (``--by band``: the band at hand-off, ``--by source`` ...)
and by the lead's first content.

A deal counts once, for its first associated lead (the earliest link). Per group: ``won_deals``,
``lost_deals``, ``win_rate`` (won / closed), ``amount`` (the sum won per currency), the median and
p90 days from the lead's first hand-off to the win, and ``first_content``: per asset or form of
the lead's earliest event that names one, its won deals and amount. Deals come from the CRMs
(HubSpot deals, Salesforce opportunities); a lead won by its status alone has no deal and no
amount, so it is not here (the funnel counts it).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Float, Numeric, String, and_, case, cast, func, select
from sqlalchemy.orm import Session

from integration.reports.report import Report, columns_of
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
from integration.store.models import Deal, DealLead, Event, Transition

#: The columns of a closed deal (``_closed``).
CLOSED = {"grp": String(), "outcome": String(), "amount": Numeric(18, 2), "currency": String(), "content": String(),
          "days_to_win": Float()}
FIRST = ["group", "won_deals", "lost_deals", "win_rate", "median_days_to_win", "p90_days_to_win"]


def build(session: Session, query: ReportQuery) -> Report:
    """Return the revenue report of the deals closed in the window, one row per group."""
    prepare(session)
    with materialized(session, "deals", _closed(session, query), CLOSED) as closed:
        rows = _rows(session, closed)
    return Report("revenue", rows, columns_of(rows, FIRST))


def _rows(session: Session, closed: Any) -> list[dict[str, Any]]:
    """The report's rows from the closed deals."""
    won = closed.c.outcome == "won"
    counted = session.execute(
        select(closed.c.grp, count_if(won).label("won"), count_if(closed.c.outcome == "lost").label("lost"))
        .group_by(closed.c.grp).order_by(closed.c.grp)).mappings().all()
    amounts: dict[str, dict[str, float]] = {}
    contents: dict[str, dict[str, dict[str, Any]]] = {}
    for grp, content, currency, deals, amount in session.execute(
            select(closed.c.grp, closed.c.content, closed.c.currency, func.count(), func.sum(closed.c.amount))
            .where(won).group_by(closed.c.grp, closed.c.content, closed.c.currency)
            .order_by(closed.c.grp, closed.c.content, closed.c.currency)):
        currency = currency or NONE
        total = amounts.setdefault(grp, {})
        total[currency] = total.get(currency, 0.0) + _money(amount)
        entry = contents.setdefault(grp, {}).setdefault(content, {"won_deals": 0, "amount": {}})
        entry["won_deals"] += int(deals)
        entry["amount"][currency] = entry["amount"].get(currency, 0.0) + _money(amount)
    spreads = spreads_by_group(session, closed, ["grp"], "days_to_win")
    rows = []
    for row in counted:
        spread = spreads.get((row["grp"],), [None, None])
        ranked = dict(sorted(contents.get(row["grp"], {}).items(), key=lambda item: (-item[1]["won_deals"], item[0])))
        rows.append({"group": row["grp"], "won_deals": int(row["won"]), "lost_deals": int(row["lost"]),
                     "win_rate": share(row["won"], int(row["won"]) + int(row["lost"])),
                     "median_days_to_win": days(spread[0]), "p90_days_to_win": days(spread[1]),
                     "amount": {currency: round(value, 2) for currency, value in
                                sorted(amounts.get(row["grp"], {}).items())},
                     "first_content": ranked})
    return rows


def _money(amount: Decimal | float | None) -> float:
    return float(amount or 0)


def _closed(session: Session, query: ReportQuery) -> Any:
    """Each deal won or lost in the window with its first lead's group, first content and the
    days from that lead's first hand-off to the win."""
    links = (select(DealLead.deal_id, DealLead.lead_id,
                    func.row_number().over(partition_by=DealLead.deal_id,
                                           order_by=(DealLead.linked_at, DealLead.lead_id)).label("nth"))
             .subquery("links"))
    deals = (select(Deal.id, Deal.outcome, Deal.amount, Deal.currency, Deal.closed_at, links.c.lead_id)
             .join(links, and_(links.c.deal_id == Deal.id, links.c.nth == 1))
             .where(Deal.outcome.in_(("won", "lost")), Deal.deleted_at.is_(None), Deal.merged_into_id.is_(None),
                    Deal.closed_at.is_not(None), *in_window(Deal.closed_at, query))
             .cte("window_deals"))
    handed = (select(Transition.lead_id, func.min(Transition.at).label("handed_at"))
              .where(Transition.to_stage == "mql", Transition.from_stage != "mql",
                     Transition.lead_id.in_(select(deals.c.lead_id)))
              .group_by(Transition.lead_id).subquery("first_handoffs"))
    named = func.coalesce(Event.properties["asset"].as_string(), Event.properties["form"].as_string())
    ranked = (select(Event.lead_id, named.label("content"),
                     func.row_number().over(partition_by=Event.lead_id,
                                            order_by=(Event.occurred_at, Event.id)).label("nth"))
              .where(Event.lead_id.in_(select(deals.c.lead_id)), named.is_not(None)).subquery("contents"))
    groups = lead_groups(session, query.by).subquery("groups")
    won = deals.c.outcome == "won"
    return (select(groups.c.grp, deals.c.outcome, deals.c.amount, deals.c.currency,
                   func.coalesce(ranked.c.content, NONE).label("content"),
                   cast(case((won, days_between(session, deals.c.closed_at, handed.c.handed_at))), Float)
                   .label("days_to_win"))
            .select_from(deals).join(groups, groups.c.lead_id == deals.c.lead_id)
            .outerjoin(handed, handed.c.lead_id == deals.c.lead_id)
            .outerjoin(ranked, and_(ranked.c.lead_id == deals.c.lead_id, ranked.c.nth == 1)))
