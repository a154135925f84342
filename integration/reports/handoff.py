"""``handoff``: how sales answered the hand-offs (MQLs) of the window, and what the MQL definition
is worth.

Per group: ``handed_off`` (entries into mql in the window), how they ended to date (``accepted``,
``rejected`` with ``rejection_reasons``, ``no_response`` when the SLA recycled them, ``other``,
``open``), ``acceptance_rate`` (accepted / decided, where decided = all but open), the median and
p90 days to accept, ``qualified`` (the lead reached sql or won after the hand-off) and
``precision`` (qualified / decided: the share of the MQLs judged that turned out to be real
opportunities), and ``rules``: per rule among the reasons of the lead's first MQL score (rules
with positive points), its hand-offs, acceptances and acceptance rate.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, case, cast, func, select, true
from sqlalchemy.orm import Session

from integration.reports.handoffs import hand_offs, stage_marks
from integration.reports.report import Report, columns_of
from integration.reports.sql import (
    count_if,
    days,
    days_between,
    dialect,
    lead_groups,
    materialized,
    prepare,
    share,
    spreads_by_group,
)
from integration.reports.window import ReportQuery
from integration.store.models import ScoreRecord

OUTCOMES = ("accepted", "rejected", "no_response", "other", "open")
#: The columns of a judged hand-off (``_judged``).
JUDGED = {"grp": String(), "lead_id": Integer(), "outcome": String(), "reason": String(), "qualified": Boolean(),
          "days_to_accept": Float()}


def build(session: Session, query: ReportQuery) -> Report:
    """Return the hand-off report of the window, one row per group."""
    prepare(session)
    with materialized(session, "handoffs", _judged(session, query), JUDGED) as judged:
        rows = _rows(session, judged)
    first = ["group", "handed_off", *OUTCOMES, "acceptance_rate", "median_days_to_accept", "p90_days_to_accept",
             "qualified", "precision"]
    return Report("handoff", rows, columns_of(rows, first))


def _rows(session: Session, judged: Any) -> list[dict[str, Any]]:
    """The report's rows from the judged hand-offs."""
    decided = judged.c.outcome != "open"
    counted = session.execute(
        select(judged.c.grp, func.count().label("handed_off"),
               *(count_if(judged.c.outcome == outcome).label(outcome) for outcome in OUTCOMES),
               count_if(decided & judged.c.qualified).label("qualified"))
        .group_by(judged.c.grp).order_by(judged.c.grp)).mappings().all()
    reasons: dict[str, dict[str, int]] = {}
    for grp, reason, count in session.execute(
            select(judged.c.grp, func.coalesce(judged.c.reason, "(none)"), func.count())
            .where(judged.c.outcome == "rejected").group_by(judged.c.grp, judged.c.reason)
            .order_by(judged.c.grp, func.count().desc(), judged.c.reason)):
        reasons.setdefault(grp, {})[reason] = int(count)
    spreads = spreads_by_group(session, judged, ["grp"], "days_to_accept")
    rules = _by_rule(session, judged)
    rows = []
    for row in counted:
        decided_count = row["handed_off"] - row["open"]
        spread = spreads.get((row["grp"],), [None, None])
        rows.append({"group": row["grp"], "handed_off": row["handed_off"],
                     **{outcome: int(row[outcome]) for outcome in OUTCOMES},
                     "acceptance_rate": share(row["accepted"], decided_count),
                     "median_days_to_accept": days(spread[0]), "p90_days_to_accept": days(spread[1]),
                     "qualified": int(row["qualified"]), "precision": share(row["qualified"], decided_count),
                     "rejection_reasons": reasons.get(row["grp"], {}), "rules": rules.get(row["grp"], {})})
    return rows


def _judged(session: Session, query: ReportQuery) -> Any:
    """Each hand-off of the window with its lead's group, its end, whether the lead qualified
    after it, and the days it took sales to accept it."""
    handoffs = hand_offs(session, query).subquery("handoffs")
    groups = lead_groups(session, query.by).subquery("groups")
    qualified = stage_marks("sql", "won").subquery("qualified")
    accepted = handoffs.c.outcome == "accepted"
    return (select(groups.c.grp, handoffs.c.lead_id, handoffs.c.outcome, handoffs.c.reason,
                   func.coalesce(qualified.c.last_at >= handoffs.c.at, False).label("qualified"),
                   cast(case((accepted, days_between(session, handoffs.c.ended_at, handoffs.c.at))), Float)
                   .label("days_to_accept"))
            .join(groups, groups.c.lead_id == handoffs.c.lead_id)
            .outerjoin(qualified, qualified.c.lead_id == handoffs.c.lead_id))


def mql_rules(session: Session) -> Any:
    """Per lead, the rules with positive points among the reasons of its first MQL score
    (``lead_id``, ``rule``)."""
    first = (select(func.min(ScoreRecord.id).label("score_id")).where(ScoreRecord.mql.is_(True))
             .group_by(ScoreRecord.lead_id).subquery("first_mql_scores"))
    if dialect(session) == "postgresql":
        reasons = func.jsonb_array_elements(ScoreRecord.result["reasons"]).table_valued("value").alias("reasons")
        rule = func.jsonb_extract_path_text(reasons.c.value, "rule")
        points = cast(func.jsonb_extract_path_text(reasons.c.value, "points"), Float)
    else:
        reasons = func.json_each(ScoreRecord.result, "$.reasons").table_valued("value").alias("reasons")
        rule, points = func.json_extract(reasons.c.value, "$.rule"), func.json_extract(reasons.c.value, "$.points")
    return (select(ScoreRecord.lead_id, rule.label("rule")).select_from(ScoreRecord)
            .join(first, first.c.score_id == ScoreRecord.id).join(reasons, true())
            .where(points > 0, rule.is_not(None)).distinct())


def _by_rule(session: Session, judged: Any) -> dict[str, dict[str, dict[str, Any]]]:
    rules = mql_rules(session).subquery("mql_rules")
    decided = judged.c.outcome != "open"
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for grp, rule, handed_off, accepted, judged_count in session.execute(
            select(judged.c.grp, rules.c.rule, func.count(), count_if(judged.c.outcome == "accepted"),
                   count_if(decided))
            .join(rules, rules.c.lead_id == judged.c.lead_id)
            .group_by(judged.c.grp, rules.c.rule).order_by(judged.c.grp, func.count().desc(), rules.c.rule)):
        found.setdefault(grp, {})[rule] = {"handed_off": int(handed_off), "accepted": int(accepted),
                                           "acceptance_rate": share(accepted, judged_count)}
    return found
